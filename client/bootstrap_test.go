package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/fotastack/fota/lwm2m"
)

// scriptedBS is a bootstrap server on a real UDP socket whose operations
// the test performs one by one, so that each Bootstrap-* operation and
// each refusal can be checked on the device's answers. (The real
// bootstrap server is tested with this client in server/bootstrap_test.go.)
type scriptedBS struct {
	uri     string
	conns   chan *udpclient.Conn
	queries chan []string
}

func newScriptedBS(t *testing.T) *scriptedBS {
	t.Helper()
	l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sb := &scriptedBS{uri: "coap://" + l.LocalAddr().String(), conns: make(chan *udpclient.Conn, 4), queries: make(chan []string, 4)}
	srv := udp.NewServer(options.WithMux(mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
		p, _ := r.Options().Path()
		if r.Code() != codes.POST || strings.Trim(p, "/") != "bs" {
			return
		}
		qs, _ := r.Options().Queries()
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
		sb.queries <- qs
		sb.conns <- w.Conn().(*udpclient.Conn)
	})))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return sb
}

// next waits for a Bootstrap-Request and returns the device's session.
func (sb *scriptedBS) next(t *testing.T) (*udpclient.Conn, []string) {
	t.Helper()
	select {
	case q := <-sb.queries:
		return <-sb.conns, q
	case <-time.After(5 * time.Second):
		t.Fatal("no Bootstrap-Request")
		return nil, nil
	}
}

type answer struct {
	code codes.Code
	cf   lwm2m.ContentFormat
	body []byte
}

// op sends one request to the device: method, path, optional payload in
// format cf, optional Accept.
func op(t *testing.T, cc *udpclient.Conn, method codes.Code, path string, cf lwm2m.ContentFormat, body []byte, acceptCF int) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(req)
	req.SetCode(method)
	if err := req.SetPath(path); err != nil {
		t.Fatal(err)
	}
	req.SetType(message.Confirmable)
	req.SetMessageID(cc.GetMessageID())
	tok, _ := message.GetToken()
	req.SetToken(tok)
	if body != nil {
		req.SetContentFormat(message.MediaType(cf))
		req.SetBody(bytes.NewReader(body))
	}
	if acceptCF >= 0 {
		req.SetAccept(message.MediaType(acceptCF))
	}
	resp, err := cc.Do(req)
	if err != nil {
		t.Fatalf("%v %s: %v", method, path, err)
	}
	defer cc.ReleaseMessage(resp)
	a := answer{code: resp.Code()}
	if f, err := resp.ContentFormat(); err == nil {
		a.cf = lwm2m.ContentFormat(f)
	}
	if b := resp.Body(); b != nil {
		a.body, _ = io.ReadAll(b)
	}
	return a
}

func encode(t *testing.T, cf lwm2m.ContentFormat, base lwm2m.Path, entries ...lwm2m.Entry) []byte {
	t.Helper()
	b, err := lwm2m.Encode(cf, base, entries)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func res(o, i, r uint16, v lwm2m.Value) lwm2m.Entry {
	return lwm2m.Entry{Path: lwm2m.ResourcePath(o, i, r), Value: v}
}

func bsDeviceConfig(t *testing.T, dir string) Config {
	return Config{Endpoint: "bs-dev", StateDir: dir, RequestTimeout: 3 * time.Second, Logger: testLogger(t)}
}

type bsResult struct {
	acc *Accounts
	err error
}

func startBootstrap(t *testing.T, sb *scriptedBS, dir string, timeout time.Duration) chan bsResult {
	out := make(chan bsResult, 1)
	go func() {
		acc, err := Bootstrap(context.Background(), bsDeviceConfig(t, dir), BootstrapConfig{URI: sb.uri, Timeout: timeout}, nil)
		out <- bsResult{acc, err}
	}()
	return out
}

func dmSecurity(inst uint16, uri string, mode int64, id, key []byte) []lwm2m.Entry {
	return []lwm2m.Entry{
		res(0, inst, SecServerURI, lwm2m.String(uri)), res(0, inst, SecBootstrapServer, lwm2m.Boolean(false)),
		res(0, inst, SecMode, lwm2m.Integer(mode)), res(0, inst, SecPublicKeyOrID, lwm2m.Opaque(id)),
		res(0, inst, SecServerPublicKey, lwm2m.Opaque([]byte{})), res(0, inst, SecSecretKey, lwm2m.Opaque(key)),
		res(0, inst, SecShortServerID, lwm2m.Integer(101)),
	}
}

// LwM2M Core 5.2.7: every bootstrap operation against the device, with
// the answers the specification gives for allowed and refused cases.
func TestBootstrapOperationsOnDevice(t *testing.T) {
	sb := newScriptedBS(t)
	dir := t.TempDir()
	result := startBootstrap(t, sb, dir, 10*time.Second)
	cc, q := sb.next(t)
	if strings.Join(q, "&") != "ep=bs-dev&pct=112" {
		t.Fatalf("Bootstrap-Request query %v, want ep= and pct=112 (LwM2M Core 8.2.5)", q)
	}

	// Bootstrap-Discover (5.2.7.1).
	a := op(t, cc, codes.GET, "/", 0, nil, int(lwm2m.FormatLinkFormat))
	if a.code != codes.Content || a.cf != lwm2m.FormatLinkFormat || !strings.HasPrefix(string(a.body), `lwm2m="1.1",</0/0>;uri="`+sb.uri+`"`) || !strings.Contains(string(a.body), "</3/0>") {
		t.Fatalf("discover /: %v %v %s", a.code, a.cf, a.body)
	}
	// Bootstrap-Delete (5.2.7.5): the bootstrap account stays.
	if a := op(t, cc, codes.DELETE, "/0/0", 0, nil, -1); a.code != codes.BadRequest {
		t.Fatalf("delete of the bootstrap account: %v, want 4.00", a.code)
	}
	if a := op(t, cc, codes.DELETE, "/", 0, nil, -1); a.code != codes.Deleted {
		t.Fatalf("delete /: %v", a.code)
	}
	if a := op(t, cc, codes.GET, "/0", 0, nil, int(lwm2m.FormatLinkFormat)); !strings.Contains(string(a.body), "</0/0>") {
		t.Fatalf("bootstrap account gone after delete /: %s", a.body)
	}

	// Bootstrap-Write (5.2.7.4) in three formats.
	sec := dmSecurity(1, "coap://127.0.0.1:5683", SecurityModeNoSec, nil, nil)
	if a := op(t, cc, codes.PUT, "/0/1", lwm2m.FormatTLV, encode(t, lwm2m.FormatTLV, lwm2m.InstancePath(0, 1), sec...), -1); a.code != codes.Changed {
		t.Fatalf("write /0/1 TLV: %v %s", a.code, a.body)
	}
	srv := []lwm2m.Entry{res(1, 0, SrvShortServerID, lwm2m.Integer(101)), res(1, 0, SrvLifetime, lwm2m.Integer(60)), res(1, 0, SrvBinding, lwm2m.String("U"))}
	if a := op(t, cc, codes.PUT, "/1/0", lwm2m.FormatSenMLCBOR, encode(t, lwm2m.FormatSenMLCBOR, lwm2m.InstancePath(1, 0), srv...), -1); a.code != codes.Changed {
		t.Fatalf("write /1/0 SenML CBOR: %v %s", a.code, a.body)
	}
	acl := []lwm2m.Entry{res(2, 0, 0, lwm2m.Integer(3)), res(2, 0, 1, lwm2m.Integer(0)),
		{Path: lwm2m.ResourceInstancePath(2, 0, 2, 101), Value: lwm2m.Integer(15)}, res(2, 0, 3, lwm2m.Integer(101))}
	if a := op(t, cc, codes.PUT, "/2/0", lwm2m.FormatLwM2MCBOR, encode(t, lwm2m.FormatLwM2MCBOR, lwm2m.InstancePath(2, 0), acl...), -1); a.code != codes.Changed {
		t.Fatalf("write /2/0 LwM2M CBOR: %v %s", a.code, a.body)
	}
	// Writes the device cannot keep.
	if a := op(t, cc, codes.PUT, "/5/0", lwm2m.FormatTLV, encode(t, lwm2m.FormatTLV, lwm2m.InstancePath(5, 0), res(5, 0, 1, lwm2m.String("x"))), -1); a.code != codes.NotFound {
		t.Fatalf("write /5/0: %v, want 4.04", a.code)
	}
	if a := op(t, cc, codes.PUT, "/1/0", lwm2m.FormatTLV, encode(t, lwm2m.FormatTLV, lwm2m.InstancePath(1, 0), res(1, 0, 99, lwm2m.Integer(1))), -1); a.code != codes.NotFound {
		t.Fatalf("write of an unknown resource: %v, want 4.04", a.code)
	}
	if a := op(t, cc, codes.PUT, "/1/0", lwm2m.FormatTLV, []byte{0xff, 0x01}, -1); a.code != codes.BadRequest {
		t.Fatalf("write of garbage TLV: %v, want 4.00", a.code)
	}
	if a := op(t, cc, codes.PUT, "/1/0", 9999, []byte{1}, -1); a.code != codes.UnsupportedMediaType {
		t.Fatalf("write in an unknown format: %v, want 4.15", a.code)
	}

	// Bootstrap-Read (5.2.7.2): Server and ACL objects, never Security.
	a = op(t, cc, codes.GET, "/1/0", 0, nil, int(lwm2m.FormatSenMLJSON))
	if a.code != codes.Content {
		t.Fatalf("read /1/0: %v", a.code)
	}
	got, err := lwm2m.Decode(a.cf, lwm2m.InstancePath(1, 0), a.body, bootstrapResolver{})
	if err != nil || len(got) != 3 || got[1].Value.Int() != 60 {
		t.Fatalf("read /1/0: %v %v", got, err)
	}
	if a := op(t, cc, codes.GET, "/0/1", 0, nil, -1); a.code != codes.Unauthorized {
		t.Fatalf("read /0/1: %v, want 4.01", a.code)
	}
	if a := op(t, cc, codes.GET, "/1", 0, nil, int(lwm2m.FormatLinkFormat)); !strings.Contains(string(a.body), "</1/0>;ssid=101") {
		t.Fatalf("discover /1: %s", a.body)
	}

	// Bootstrap-Finish (5.2.7.6).
	if a := op(t, cc, codes.POST, "/bs", 0, nil, -1); a.code != codes.Changed {
		t.Fatalf("finish: %v %s", a.code, a.body)
	}
	r := <-result
	if r.err != nil {
		t.Fatal(r.err)
	}
	dm, err := r.acc.Check()
	if err != nil || dm.URI != "coap://127.0.0.1:5683" || dm.Lifetime != 60 || dm.SecInstance != 1 || dm.SrvInstance != 0 {
		t.Fatalf("committed account %+v %v", dm, err)
	}
	kept, err := LoadAccounts(dir)
	if err != nil || kept == nil {
		t.Fatalf("accounts not saved: %v", err)
	}
	if v, _ := kept.Get(lwm2m.ResourceInstancePath(2, 0, 2, 101)); v.Int() != 15 {
		t.Fatalf("ACL not kept: %v", kept.Entries(lwm2m.ObjectPath(2)))
	}
	if len(kept.Entries(lwm2m.Root)) != len(r.acc.Entries(lwm2m.Root)) {
		t.Fatal("saved accounts differ from the committed ones")
	}
}

// LwM2M Core 6.1.7.7: Finish with an inconsistent configuration is
// answered 4.06 and nothing is committed.
func TestBootstrapFinishNotAcceptable(t *testing.T) {
	for name, entries := range map[string][]lwm2m.Entry{
		"psk without key":   dmSecurity(1, "coaps://127.0.0.1:5684", SecurityModePSK, []byte("id"), []byte{}),
		"no server account": nil,
	} {
		t.Run(name, func(t *testing.T) {
			sb := newScriptedBS(t)
			dir := t.TempDir()
			result := startBootstrap(t, sb, dir, 10*time.Second)
			cc, _ := sb.next(t)
			if entries != nil {
				op(t, cc, codes.PUT, "/0/1", lwm2m.FormatTLV, encode(t, lwm2m.FormatTLV, lwm2m.InstancePath(0, 1), entries...), -1)
				op(t, cc, codes.PUT, "/1/0", lwm2m.FormatTLV, encode(t, lwm2m.FormatTLV, lwm2m.InstancePath(1, 0), res(1, 0, SrvShortServerID, lwm2m.Integer(101))), -1)
			}
			a := op(t, cc, codes.POST, "/bs", 0, nil, -1)
			if a.code != codes.NotAcceptable || len(a.body) == 0 {
				t.Fatalf("finish: %v %q, want 4.06 with a reason", a.code, a.body)
			}
			r := <-result
			if !errors.Is(r.err, ErrBootstrapFailed) || !strings.Contains(r.err.Error(), ErrInconsistent.Error()) {
				t.Fatalf("Bootstrap: %v", r.err)
			}
			if _, err := os.Stat(filepath.Join(dir, accountsFile)); !os.IsNotExist(err) {
				t.Fatal("refused configuration was saved")
			}
		})
	}
}

// A bootstrap server that stops half way (no Finish): the device gives up
// after its timeout, keeps nothing, and refuses the late requests.
func TestBootstrapWithoutFinishKeepsNothing(t *testing.T) {
	sb := newScriptedBS(t)
	dir := t.TempDir()
	result := startBootstrap(t, sb, dir, 300*time.Millisecond)
	cc, _ := sb.next(t)
	op(t, cc, codes.PUT, "/0/1", lwm2m.FormatTLV, encode(t, lwm2m.FormatTLV, lwm2m.InstancePath(0, 1), dmSecurity(1, "coap://127.0.0.1:5683", SecurityModeNoSec, nil, nil)...), -1)
	r := <-result
	if !errors.Is(r.err, ErrBootstrapFailed) || !strings.Contains(r.err.Error(), "no Bootstrap-Finish") {
		t.Fatalf("Bootstrap: %v", r.err)
	}
	if _, err := os.Stat(filepath.Join(dir, accountsFile)); !os.IsNotExist(err) {
		t.Fatal("unfinished bootstrap was saved")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("state dir holds %v", entries)
	}
}

// The accounts file survives a round trip, and the write is atomic: no
// temporary file stays behind, and a damaged file is an error, not a
// panic or a half-read account.
func TestAccountsFile(t *testing.T) {
	dir := t.TempDir()
	a := NewFactoryAccounts(BootstrapConfig{URI: "coaps://127.0.0.1:5784", PSKIdentity: "id", PSKKey: []byte{1, 2, 3}})
	if err := a.write(dmSecurity(3, "coaps://127.0.0.1:5684", SecurityModePSK, []byte("dm"), []byte{9})); err != nil {
		t.Fatal(err)
	}
	if err := a.write([]lwm2m.Entry{res(1, 2, SrvShortServerID, lwm2m.Integer(101)), res(1, 2, SrvLifetime, lwm2m.Integer(77))}); err != nil {
		t.Fatal(err)
	}
	if err := SaveAccounts(dir, a); err != nil {
		t.Fatal(err)
	}
	if err := SaveAccounts(dir, a); err != nil { // replacing works too
		t.Fatal(err)
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 || files[0].Name() != accountsFile {
		t.Fatalf("state dir holds %v, want only %s", files, accountsFile)
	}
	b, err := LoadAccounts(dir)
	if err != nil {
		t.Fatal(err)
	}
	dm, err := b.Check()
	if err != nil || dm.PSKIdentity != "dm" || !bytes.Equal(dm.PSKKey, []byte{9}) || dm.Lifetime != 77 || dm.SecInstance != 3 || dm.SrvInstance != 2 {
		t.Fatalf("loaded %+v %v", dm, err)
	}
	if v, _ := b.Get(lwm2m.ResourcePath(0, 0, SecSecretKey)); !bytes.Equal(v.Bytes(), []byte{1, 2, 3}) {
		t.Fatal("bootstrap key not kept")
	}
	if err := os.WriteFile(filepath.Join(dir, accountsFile), []byte(`[{"path":"/0/0/0","type":"integer","value":"x"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAccounts(dir); err == nil || !strings.Contains(err.Error(), "/0/0/0") {
		t.Fatalf("damaged file: %v, want an error naming the path", err)
	}
	if a, err := LoadAccounts(t.TempDir()); a != nil || err != nil {
		t.Fatalf("empty state dir: %v %v, want nil, nil", a, err)
	}
}

// Storage limits: too many instances or too large a value is refused
// whole, the accounts stay as they were.
func TestAccountsWriteLimits(t *testing.T) {
	a := NewFactoryAccounts(BootstrapConfig{URI: "coap://h"})
	before := len(a.Entries(lwm2m.Root))
	big := dmSecurity(1, "coaps://h", SecurityModePSK, []byte("id"), make([]byte, maxAccountValue+1))
	if err := a.write(big); err == nil || lwm2m.CodeOf(err) != codes.RequestEntityTooLarge {
		t.Fatalf("oversized key: %v", err)
	}
	for i := uint16(1); i < maxAccountInstances; i++ {
		if err := a.write([]lwm2m.Entry{res(0, i, SecServerURI, lwm2m.String("coap://h"))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.write([]lwm2m.Entry{res(0, 99, SecServerURI, lwm2m.String("coap://h"))}); err == nil {
		t.Fatal("instance beyond the storage limit accepted")
	}
	if len(a.Entries(lwm2m.Root)) != before+maxAccountInstances-1 {
		t.Fatal("a refused write changed the accounts")
	}
}

// FuzzAccountsJSON: the state file parser never panics, and what it
// accepts saves and loads back the same.
func FuzzAccountsJSON(f *testing.F) {
	a := NewFactoryAccounts(BootstrapConfig{URI: "coaps://127.0.0.1:5784", PSKIdentity: "id", PSKKey: []byte{1, 2}})
	_ = a.write(dmSecurity(1, "coaps://127.0.0.1:5684", SecurityModePSK, []byte("dm"), []byte{9}))
	_ = a.write([]lwm2m.Entry{res(1, 0, SrvShortServerID, lwm2m.Integer(101)), {Path: lwm2m.ResourceInstancePath(2, 0, 2, 101), Value: lwm2m.Integer(15)}})
	seed, _ := a.MarshalJSON()
	f.Add(seed)
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"path":"/1/0/1","type":"integer","value":"60"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var x Accounts
		if err := x.UnmarshalJSON(data); err != nil {
			return
		}
		_, _ = x.Check()
		out, err := x.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var y Accounts
		if err := y.UnmarshalJSON(out); err != nil {
			t.Fatalf("re-read of %s: %v", out, err)
		}
		if len(y.Entries(lwm2m.Root)) != len(x.Entries(lwm2m.Root)) {
			t.Fatal("round trip lost values")
		}
	})
}

// The provisioned instances become the client's objects 0, 1 and 2: the
// DM server sees /1/2 (not the made-up /1/0) and the ACL instance.
func TestInstallAccounts(t *testing.T) {
	a := NewFactoryAccounts(BootstrapConfig{URI: "coap://bs"})
	if err := a.write(dmSecurity(4, "coap://127.0.0.1:5683", SecurityModeNoSec, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if err := a.write([]lwm2m.Entry{res(1, 2, SrvShortServerID, lwm2m.Integer(101)), res(1, 2, SrvLifetime, lwm2m.Integer(45)),
		res(2, 7, 0, lwm2m.Integer(3)), res(2, 7, 1, lwm2m.Integer(0)), {Path: lwm2m.ResourceInstancePath(2, 7, 2, 101), Value: lwm2m.Integer(15)}}); err != nil {
		t.Fatal(err)
	}
	dm, err := a.Check()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Endpoint: "inst", ServerURI: dm.URI, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	installAccounts(c, a, dm)
	if got := c.Object(1).Instances(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("server instances %v, want [2]", got)
	}
	if got := c.Object(0).Instances(); len(got) != 2 {
		t.Fatalf("security instances %v", got)
	}
	e, err := c.Object(2).Read(lwm2m.ResourceInstancePath(2, 7, 2, 101))
	if err != nil || len(e) != 1 || e[0].Value.Int() != 15 {
		t.Fatalf("ACL read: %v %v", e, err)
	}
	if !strings.Contains(c.RegistrationLinks(), "</2/7>") || !strings.Contains(c.RegistrationLinks(), "</1/2>") {
		t.Fatalf("registration links %s", c.RegistrationLinks())
	}
}
