package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/servertest"
	"github.com/fotastack/fota/server/store"
)

var bsKey = []byte("bootstrap-key-01")

// bsEnv is a DM server with a bootstrap server beside it, as `fota server
// --bootstrap-coaps` runs them: one bbolt file, the bootstrap API on the
// DM server's HTTP API, generated PSKs in the DM security store.
type bsEnv struct {
	dm *servertest.Server
	bs *bootstrap.Server
}

func startBootstrapEnv(t testing.TB, mod ...func(*bootstrap.Options)) *bsEnv {
	t.Helper()
	dm := servertest.Start(t, func(c *server.Config) {
		c.Bootstrap = bootstrap.Options{
			CoAPAddr: "127.0.0.1:0", CoAPSAddr: "127.0.0.1:0",
			SessionTimeout: 5 * time.Second, RequestTimeout: 2 * time.Second,
			Logger: bsLogger(t),
		}
		for _, m := range mod {
			m(&c.Bootstrap)
		}
	})
	bs := dm.Bootstrap
	return &bsEnv{dm: dm, bs: bs}
}

func bsLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// putCredential stores a bootstrap credential through the API.
func (e *bsEnv) putCredential(t testing.TB, ep, id string, key []byte) {
	t.Helper()
	body := map[string]any{"endpoint": ep, "tls": map[string]any{"mode": "psk", "details": map[string]any{"identity": id, "key": hex.EncodeToString(key)}}}
	if code := e.dm.API("PUT", "/api/bootstrap/security/clients", body, nil); code != http.StatusNoContent {
		t.Fatalf("PUT bootstrap credential: %d", code)
	}
}

// dmConfig is what `fota provision` stores: a fresh generated DM PSK and
// the DM server's URI.
func dmConfig() map[string]any {
	return map[string]any{
		"toDelete": []string{"/0", "/1"},
		"security": map[string]any{"1": map[string]any{"securityMode": "PSK", "generatePsk": true, "serverId": 101}},
		"servers":  map[string]any{"0": map[string]any{"shortId": 101, "lifetime": 30, "binding": "U"}},
	}
}

// provision stores the bootstrap credential and a generated-PSK config;
// it returns the stored config.
func (e *bsEnv) provision(t *testing.T, ep string) bootstrap.Config {
	t.Helper()
	e.putCredential(t, ep, ep+"-bs", bsKey)
	var out struct{ Config bootstrap.Config }
	if code := e.dm.API("PUT", "/api/bootstrap/"+ep, dmConfig(), &out); code != http.StatusOK {
		t.Fatalf("PUT bootstrap config: %d", code)
	}
	return out.Config
}

func (e *bsEnv) factory(ep string) client.BootstrapConfig {
	return client.BootstrapConfig{URI: "coaps://" + e.bs.CoAPSAddr().String(), PSKIdentity: ep + "-bs", PSKKey: bsKey, Timeout: 5 * time.Second}
}

func deviceConfig(t *testing.T, ep, dir string) client.Config {
	return client.Config{
		Endpoint: ep, StateDir: dir, Lifetime: 30 * time.Second,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		RequestTimeout: 2 * time.Second, HandshakeTimeout: 2 * time.Second,
		Logger: bsLogger(t),
	}
}

// waitRegistered waits until the DM server lists ep and returns it.
func waitRegistered(t *testing.T, dm *servertest.Server, ep string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var c map[string]any
		if dm.API("GET", "/api/clients/"+ep, nil, &c) == http.StatusOK {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not registered at the DM server within %v", ep, within)
	return nil
}

// runDevice runs RunWithBootstrap until the test ends; it counts
// bootstraps.
type device struct {
	mu         sync.Mutex
	bootstraps []error
	stop       func()
}

func (d *device) count() (ok, failed int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.bootstraps {
		if e == nil {
			ok++
		} else {
			failed++
		}
	}
	return
}

func runDevice(t *testing.T, cfg client.Config, bc client.BootstrapConfig) *device {
	d := &device{}
	bc.OnBootstrap = func(err error) {
		d.mu.Lock()
		d.bootstraps = append(d.bootstraps, err)
		d.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = client.RunWithBootstrap(ctx, cfg, bc)
	}()
	d.stop = func() { cancel(); <-done }
	t.Cleanup(d.stop)
	return d
}

// LwM2M Core 6.1 with 7.2.1: a device with factory bootstrap credentials
// only is refused by the DM server, bootstraps over DTLS, and registers
// over DTLS with a PSK it never had, which the DM server accepts; after a
// restart it registers from its state directory without bootstrapping.
func TestBootstrapThenRegisterOverDTLS(t *testing.T) {
	e := startBootstrapEnv(t)
	cfgStored := e.provision(t, "dev1")
	gen := cfgStored.Security[1]
	if gen == nil || len(gen.SecretKey) != 16 || gen.URI != "coaps://"+e.dm.CoAPSAddr().String() || gen.GeneratePSK {
		t.Fatalf("stored config did not get a generated PSK and the DM URI: %+v", gen)
	}

	// Before bootstrap: the device's only credential is the bootstrap
	// one, and the DM server must not accept it.
	pre := deviceConfig(t, "dev1", "")
	pre.ServerURI = "coaps://" + e.dm.CoAPSAddr().String()
	pre.PSKIdentity, pre.PSKKey = "dev1-bs", bsKey
	failed := make(chan client.Event, 1)
	pre.OnEvent = func(ev client.Event) {
		if ev.Kind == client.EventRegisterFailed {
			select {
			case failed <- ev:
			default:
			}
		}
	}
	c, err := client.New(pre)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-failed:
		if !strings.Contains(ev.Err.Error(), "handshake") {
			t.Errorf("refusal of the bootstrap identity at the DM server: %v, want a failed handshake", ev.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the DM server did not refuse the bootstrap credential")
	}
	c.Stop()
	if e.dm.Device("dev1") != nil {
		t.Fatal("device registered with its bootstrap credential")
	}

	dir := t.TempDir()
	d := runDevice(t, deviceConfig(t, "dev1", dir), e.factory("dev1"))
	reg := waitRegistered(t, e.dm, "dev1", 10*time.Second)
	if reg["security"] != "psk" || reg["transport"] != "coaps" || reg["identity"] != string(gen.PublicKeyOrID) {
		t.Fatalf("registration security %v/%v identity %v, want psk over coaps as %q", reg["transport"], reg["security"], reg["identity"], gen.PublicKeyOrID)
	}
	st, ok := e.bs.Status("dev1")
	if !ok || st.State != bootstrap.Finished || st.Format != lwm2m.FormatSenMLCBOR.String() {
		t.Fatalf("bootstrap status %+v, want finished in senml+cbor", st)
	}
	acc, err := client.LoadAccounts(dir)
	if err != nil || acc == nil {
		t.Fatalf("accounts not kept in the state dir: %v", err)
	}
	dmAcc, err := acc.Check()
	if err != nil || dmAcc.PSKIdentity != string(gen.PublicKeyOrID) || !bytes.Equal(dmAcc.PSKKey, gen.SecretKey) || dmAcc.ShortID != 101 {
		t.Fatalf("kept DM account %+v (%v), want the generated one", dmAcc, err)
	}
	// The bootstrap account survived Bootstrap-Delete of /0.
	if len(acc.Instances(0)) != 2 {
		t.Errorf("security instances %v, want the bootstrap one and the DM one", acc.Instances(0))
	}
	d.stop()
	if ok, _ := d.count(); ok != 1 {
		t.Fatalf("%d bootstraps, want 1", ok)
	}

	// Nor does the DM identity open a session at the bootstrap server.
	dmAsBS := e.factory("dev1")
	dmAsBS.PSKIdentity, dmAsBS.PSKKey = string(gen.PublicKeyOrID), gen.SecretKey
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "dev1", ""), dmAsBS, nil); err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("DM identity at the bootstrap server: %v, want a failed handshake", err)
	}

	// Restart: registers directly from the state dir.
	waitGone(t, e.dm, "dev1")
	d2 := runDevice(t, deviceConfig(t, "dev1", dir), e.factory("dev1"))
	waitRegistered(t, e.dm, "dev1", 10*time.Second)
	if ok, failed := d2.count(); ok+failed != 0 {
		t.Fatalf("restarted device bootstrapped again (%d)", ok+failed)
	}
}

func waitGone(t *testing.T, dm *servertest.Server, ep string) {
	t.Helper()
	for i := 0; i < 500 && dm.Device(ep) != nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if dm.Device(ep) != nil {
		t.Fatalf("%s still registered", ep)
	}
}

// LwM2M Core 6.1.5 (pct) and 7.4: the Bootstrap-Writes use the device's
// preferred format when the server has it, TLV otherwise.
func TestBootstrapWriteFormats(t *testing.T) {
	e := startBootstrapEnv(t)
	e.provision(t, "fmt")
	for _, tc := range []struct {
		pct, want lwm2m.ContentFormat
	}{
		{lwm2m.FormatTLV, lwm2m.FormatTLV},
		{lwm2m.FormatSenMLCBOR, lwm2m.FormatSenMLCBOR},
		{lwm2m.FormatLwM2MCBOR, lwm2m.FormatLwM2MCBOR},
		{lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLJSON},
		{lwm2m.FormatOpaque, lwm2m.FormatTLV}, // cannot carry instances: TLV
	} {
		t.Run(tc.pct.String(), func(t *testing.T) {
			bc := e.factory("fmt")
			bc.PreferredFormat = tc.pct
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			acc, err := client.Bootstrap(context.Background(), deviceConfig(t, "fmt", t.TempDir()), bc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := acc.Check(); err != nil {
				t.Fatal(err)
			}
			st, _ := e.bs.WaitStatus(ctx, "fmt", start)
			if st.State != bootstrap.Finished || st.Format != tc.want.String() {
				t.Fatalf("status %+v, want finished in %v", st, tc.want)
			}
		})
	}
}

// LwM2M Core 8.2.5: an unknown endpoint, or one presenting another
// endpoint's bootstrap identity, is answered 4.00 and nothing is written.
func TestBootstrapRefusesUnknownAndForeignEndpoints(t *testing.T) {
	e := startBootstrapEnv(t)
	e.provision(t, "known")
	e.putCredential(t, "noconfig", "noconfig-bs", bsKey)
	for _, tc := range []struct{ name, ep, id string }{
		{"no configuration", "noconfig", "noconfig-bs"},
		{"identity of another endpoint", "known", "noconfig-bs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bc := e.factory(tc.ep)
			bc.PSKIdentity = tc.id
			_, err := client.Bootstrap(context.Background(), deviceConfig(t, tc.ep, dir), bc, nil)
			if !errors.Is(err, client.ErrBootstrapFailed) || !strings.Contains(err.Error(), "4.00") && !strings.Contains(err.Error(), "BadRequest") {
				t.Fatalf("bootstrap: %v, want a 4.00 refusal", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "accounts.json")); !os.IsNotExist(err) {
				t.Fatal("a refused bootstrap left an accounts file")
			}
		})
	}
	// An identity the bootstrap server does not know fails the handshake.
	bc := e.factory("known")
	bc.PSKIdentity = "nobody"
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "known", ""), bc, nil); err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("unknown bootstrap identity: %v, want a handshake failure", err)
	}
	// Plain CoAP is refused for an endpoint that has a bootstrap credential.
	plain := client.BootstrapConfig{URI: "coap://" + e.bs.CoAPAddr().String(), Timeout: 3 * time.Second}
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "known", ""), plain, nil); err == nil {
		t.Fatal("plain CoAP bootstrap of an endpoint with a credential succeeded")
	}
}

// LwM2M Core 6.1.7.7: a configuration that fails at PUT is never stored.
func TestBootstrapConfigValidation(t *testing.T) {
	e := startBootstrapEnv(t)
	cases := map[string]map[string]any{
		"server names a missing security instance": {
			"security": map[string]any{"1": map[string]any{"uri": "coaps://h:5684", "securityMode": "PSK", "pskIdentity": "x", "secretKey": "0102", "serverId": 101}},
			"servers":  map[string]any{"0": map[string]any{"shortId": 102}},
		},
		"psk without key": {
			"security": map[string]any{"1": map[string]any{"uri": "coaps://h:5684", "securityMode": "PSK", "pskIdentity": "x", "serverId": 101}},
			"servers":  map[string]any{"0": map[string]any{"shortId": 101}},
		},
		"no server account": {
			"security": map[string]any{"1": map[string]any{"uri": "coap://h:5683", "securityMode": "NO_SEC", "serverId": 101}},
		},
		"unknown mode": {
			"security": map[string]any{"1": map[string]any{"uri": "coaps://h:5684", "securityMode": "MAGIC", "serverId": 101}},
			"servers":  map[string]any{"0": map[string]any{"shortId": 101}},
		},
		"bad toDelete path": {
			"toDelete": []string{"/0/x"},
			"security": map[string]any{"1": map[string]any{"uri": "coap://h:5683", "securityMode": "NO_SEC", "serverId": 101}},
			"servers":  map[string]any{"0": map[string]any{"shortId": 101}},
		},
		"unknown field": {"sekurity": map[string]any{}},
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			var out map[string]any
			if code := e.dm.API("PUT", "/api/bootstrap/v", body, &out); code != http.StatusBadRequest || out["error"] == "" || out["error"] == nil {
				t.Fatalf("PUT: %d %v, want 400 with a reason", code, out)
			}
			if code := e.dm.API("GET", "/api/bootstrap/v", nil, nil); code != http.StatusNotFound {
				t.Fatalf("refused config is readable: %d", code)
			}
		})
	}
	// No DM credential was generated by the refused configs.
	if _, err := e.dm.Store.Credential("v"); err == nil {
		t.Fatal("a refused config left a DM credential")
	}
	// A bootstrap identity may not be a DM identity.
	e.dm.AddPSK("dmdev", "shared-id", testKey)
	body := map[string]any{"endpoint": "other", "tls": map[string]any{"mode": "psk", "details": map[string]any{"identity": "shared-id", "key": "0102"}}}
	if code := e.dm.API("PUT", "/api/bootstrap/security/clients", body, nil); code != http.StatusConflict {
		t.Fatalf("bootstrap identity equal to a DM identity: %d, want 409", code)
	}
	// Nor the reverse: a DM identity may not be a bootstrap identity.
	bsBody := map[string]any{"endpoint": "bsdev", "tls": map[string]any{"mode": "psk", "details": map[string]any{"identity": "bs-only-id", "key": "0102"}}}
	if code := e.dm.API("PUT", "/api/bootstrap/security/clients", bsBody, nil); code != http.StatusNoContent {
		t.Fatalf("bootstrap credential: %d", code)
	}
	dmBody := map[string]any{"endpoint": "other2", "tls": map[string]any{"mode": "psk", "details": map[string]any{"identity": "bs-only-id", "key": "0102"}}}
	var refusal map[string]any
	if code := e.dm.API("PUT", "/api/security/clients", dmBody, &refusal); code != http.StatusConflict || refusal["error"] == "" || refusal["error"] == nil {
		t.Fatalf("DM identity equal to a bootstrap identity: %d %v, want 409 with a reason", code, refusal)
	}
	if _, err := e.dm.Store.Credential("other2"); err == nil {
		t.Fatal("the refused DM credential was stored")
	}
	// GET, list and DELETE of a stored config.
	e.provision(t, "ok")
	var all map[string]any
	if code := e.dm.API("GET", "/api/bootstrap", nil, &all); code != http.StatusOK || all["ok"] == nil {
		t.Fatalf("list: %d %v", code, all)
	}
	if code := e.dm.API("DELETE", "/api/bootstrap/ok", nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if code := e.dm.API("DELETE", "/api/bootstrap/ok", nil, nil); code != http.StatusNotFound {
		t.Fatalf("second DELETE: %d", code)
	}
	var creds []map[string]any
	e.dm.API("GET", "/api/bootstrap/security/clients", nil, &creds)
	for _, c := range creds {
		if tls, _ := c["tls"].(map[string]any); tls != nil {
			if d, _ := tls["details"].(map[string]any); d["key"] != nil && d["key"] != "" {
				t.Fatalf("credential list shows a key: %v", c)
			}
		}
	}
}

// A device that stops half way (Bootstrap-Request, then silence): the
// server gives the session up, records why, and the device's later retry
// succeeds.
func TestBootstrapDeviceStopsHalfWay(t *testing.T) {
	e := startBootstrapEnv(t, func(o *bootstrap.Options) { o.RequestTimeout = 500 * time.Millisecond })
	e.provision(t, "quitter")
	conn := dialBootstrap(t, e, "quitter-bs", bsKey)
	resp, err := conn.Post(ctxT(t), "/bs", message.TextPlain, nil, message.Option{ID: message.URIQuery, Value: []byte("ep=quitter")})
	if err != nil || resp.Code() != codes.Changed {
		t.Fatalf("bootstrap-request: %v %v", resp, err)
	}
	_ = conn.Close() // the device dies: the server's Delete goes unanswered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.bs.WaitStatus(ctx, "quitter", time.Time{})
	if err != nil || st.State != bootstrap.Failed || st.Error == "" {
		t.Fatalf("status %+v %v, want failed with a reason", st, err)
	}
	dir := t.TempDir()
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "quitter", dir), e.factory("quitter"), nil); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if st, _ := e.bs.WaitStatus(ctxT(t), "quitter", st.Ended); st.State != bootstrap.Finished {
		t.Fatalf("status after retry %+v", st)
	}
}

// LwM2M Core 6.1.7.7: Bootstrap-Finish is answered 4.06 when what was
// written is inconsistent (a security instance without its key); the
// device keeps its old accounts and the server records the refusal. A
// corrected config then succeeds.
func TestBootstrapFinishRejectsInconsistentConfig(t *testing.T) {
	e := startBootstrapEnv(t)
	e.provision(t, "inc")
	dir := t.TempDir()
	first, err := client.Bootstrap(context.Background(), deviceConfig(t, "inc", dir), e.factory("inc"), nil)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, "accounts.json"))
	// Store a broken config directly (the API would refuse it).
	bad := &bootstrap.Config{
		ToDelete: []string{"/0", "/1"},
		Security: map[uint16]*bootstrap.Security{1: {URI: "coaps://127.0.0.1:1", SecurityMode: bootstrap.ModePSK, PublicKeyOrID: bootstrap.HexBytes("id"), ServerID: 7}},
		Servers:  map[uint16]*bootstrap.ServerAccount{0: {ShortID: 7, Lifetime: 60, Binding: "U"}},
	}
	if err := e.dm.Store.PutBootstrapConfig("inc", bad); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = client.Bootstrap(context.Background(), deviceConfig(t, "inc", dir), e.factory("inc"), first)
	if !errors.Is(err, client.ErrBootstrapFailed) || !strings.Contains(err.Error(), "PSK mode without identity or key") {
		t.Fatalf("bootstrap with an inconsistent config: %v", err)
	}
	st, _ := e.bs.WaitStatus(ctxT(t), "inc", start)
	if st.State != bootstrap.Failed || !strings.Contains(st.Error, "NotAcceptable") && !strings.Contains(st.Error, "4.06") {
		t.Fatalf("server status %+v, want failed with 4.06", st)
	}
	now, _ := os.ReadFile(filepath.Join(dir, "accounts.json"))
	if !bytes.Equal(good, now) {
		t.Fatal("a refused Finish changed the kept accounts")
	}
	// Missing server account entirely.
	bad.Servers = nil
	bad.Security[1].SecretKey = bootstrap.HexBytes("k")
	_ = e.dm.Store.PutBootstrapConfig("inc", bad)
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "inc", dir), e.factory("inc"), first); err == nil || !strings.Contains(err.Error(), "no server account") {
		t.Fatalf("bootstrap without server account: %v", err)
	}
	e.provision(t, "inc")
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "inc", dir), e.factory("inc"), first); err != nil {
		t.Fatalf("corrected config: %v", err)
	}
}

// A write the device cannot store (a key above its storage limit, or an
// object it does not keep) fails that write with a clear code; nothing is
// committed; after the config is fixed the retry succeeds.
func TestBootstrapWriteDeviceCannotStore(t *testing.T) {
	e := startBootstrapEnv(t)
	e.provision(t, "small")
	dir := t.TempDir()
	big := &bootstrap.Config{
		ToDelete: []string{"/0", "/1"},
		Security: map[uint16]*bootstrap.Security{1: {URI: "coaps://127.0.0.1:1", SecurityMode: bootstrap.ModePSK, PublicKeyOrID: bootstrap.HexBytes("id"), SecretKey: make(bootstrap.HexBytes, 4000), ServerID: 7}},
		Servers:  map[uint16]*bootstrap.ServerAccount{0: {ShortID: 7, Lifetime: 60, Binding: "U"}},
	}
	if err := e.dm.Store.PutBootstrapConfig("small", big); err != nil {
		t.Fatal(err)
	}
	bc := e.factory("small")
	bc.Timeout = 2 * time.Second
	start := time.Now()
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "small", dir), bc, nil); err == nil {
		t.Fatal("bootstrap with an oversized key succeeded")
	}
	st, _ := e.bs.WaitStatus(ctxT(t), "small", start)
	if st.State != bootstrap.Failed || !strings.Contains(st.Error, "bootstrap-write /0/1") || !strings.Contains(st.Error, "at most 2048") {
		t.Fatalf("server status %+v, want the failed write and the device's reason", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "accounts.json")); !os.IsNotExist(err) {
		t.Fatal("a failed bootstrap left an accounts file")
	}
	e.provision(t, "small")
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "small", dir), e.factory("small"), nil); err != nil {
		t.Fatalf("retry after fixing the config: %v", err)
	}

	// A state dir the device cannot write: Finish answers 5.00 and the
	// bootstrap counts as failed on both sides.
	if os.Getuid() != 0 { // root writes anywhere
		ro := t.TempDir()
		if err := os.Chmod(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(ro, 0o700)
		start := time.Now()
		if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "small", ro), e.factory("small"), nil); err == nil {
			t.Fatal("bootstrap into an unwritable state dir succeeded")
		}
		if st, _ := e.bs.WaitStatus(ctxT(t), "small", start); st.State != bootstrap.Failed {
			t.Fatalf("server status %+v after a failed save", st)
		}
	}
}

// A device bootstraps twice: the second run replaces its DM account, and
// the device registers with the new key. Registration failures with the
// old key make the device bootstrap again by itself.
func TestBootstrapTwiceAfterRegistrationFails(t *testing.T) {
	e := startBootstrapEnv(t)
	e.provision(t, "twice")
	dir := t.TempDir()
	cfg := deviceConfig(t, "twice", dir)
	bc := e.factory("twice")
	bc.MaxRegisterFailures = 2
	d := runDevice(t, cfg, bc)
	first := waitRegistered(t, e.dm, "twice", 10*time.Second)
	d.stop()

	// New DM key: the one the device keeps no longer opens a session.
	e.provision(t, "twice")
	d2 := runDevice(t, cfg, bc)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c := e.dm.Device("twice"); c != nil && c.Registration().Identity != first["identity"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("device did not re-bootstrap and register with the new key")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, _ := d2.count(); ok != 1 {
		t.Fatalf("%d bootstraps after registration failures, want 1", ok)
	}
}

// LwM2M Core E.2: Execute on /1/x/9 (Bootstrap-Request Trigger) makes the
// device bootstrap again and come back registered.
func TestBootstrapRequestTrigger(t *testing.T) {
	e := startBootstrapEnv(t)
	e.provision(t, "trig")
	d := runDevice(t, deviceConfig(t, "trig", t.TempDir()), e.factory("trig"))
	waitRegistered(t, e.dm, "trig", 10*time.Second)
	// The device shows its provisioned server instance, /1/0.
	if code := e.dm.API("POST", "/api/clients/trig/1/0/9", nil, nil); code != http.StatusOK && code != http.StatusNoContent && code != http.StatusCreated {
		t.Fatalf("execute /1/0/9: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, _ := d.count(); ok == 2 && e.dm.Device("trig") != nil {
			break
		}
		if time.Now().After(deadline) {
			ok, failed := d.count()
			t.Fatalf("after /1/0/9: %d bootstraps (%d failed), registered %v", ok, failed, e.dm.Device("trig") != nil)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LwM2M 1.2 Core 6.1.7.3: GET /bspack returns the whole configuration in
// one SenML CBOR payload, to the authenticated endpoint only.
func TestBootstrapPack(t *testing.T) {
	e := startBootstrapEnv(t)
	stored := e.provision(t, "pack")
	conn := dialBootstrap(t, e, "pack-bs", bsKey)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := conn.Get(ctx, "/bspack", message.Option{ID: message.URIQuery, Value: []byte("ep=pack")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code() != codes.Content {
		t.Fatalf("bspack: %v", resp.Code())
	}
	cf, _ := resp.ContentFormat()
	body, _ := io.ReadAll(resp.Body())
	entries, err := lwm2m.Decode(lwm2m.ContentFormat(cf), lwm2m.Root, body, lwm2m.TypeMap{
		lwm2m.ResourcePath(0, 1, 5): lwm2m.TypeOpaque, lwm2m.ResourcePath(0, 1, 3): lwm2m.TypeOpaque,
	})
	if err != nil || lwm2m.ContentFormat(cf) != lwm2m.FormatSenMLCBOR {
		t.Fatalf("decode pack (%v): %v", lwm2m.ContentFormat(cf), err)
	}
	got := map[string]lwm2m.Value{}
	for _, en := range entries {
		got[en.Path.String()] = en.Value
	}
	if got["/0/1/0"].Str() != stored.Security[1].URI || !bytes.Equal(got["/0/1/5"].Bytes(), stored.Security[1].SecretKey) || got["/1/0/0"].Int() != 101 {
		t.Fatalf("pack content %v", got)
	}
	resp2, err := conn.Get(ctx, "/bspack", message.Option{ID: message.URIQuery, Value: []byte("ep=other")})
	if err != nil || resp2.Code() != codes.BadRequest {
		t.Fatalf("bspack for another endpoint: %v %v, want 4.00", resp2, err)
	}
}

// dialBootstrap opens a DTLS-PSK CoAP session to the bootstrap server as a
// bare device would, with an explicit handshake (../shared/notes trap 1).
func dialBootstrap(t *testing.T, e *bsEnv, id string, key []byte) *udpClient.Conn {
	t.Helper()
	raddr := e.bs.CoAPSAddr().(*net.UDPAddr)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := pionPSK(pc, raddr, id, key)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		dc.Close()
		t.Fatal(err)
	}
	cc := coapdtls.Client(dc, options.WithCloseSocket())
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// ctxT is a context that ends a little before the test would time out.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A device that asks again while its first session is still running
// (it rebooted half way): the new request replaces the old session at
// once, without waiting for the old one to time out.
func TestBootstrapRequestReplacesRunningSession(t *testing.T) {
	e := startBootstrapEnv(t, func(o *bootstrap.Options) { o.RequestTimeout = 5 * time.Second })
	e.provision(t, "reboot")
	conn := dialBootstrap(t, e, "reboot-bs", bsKey)
	resp, err := conn.Post(ctxT(t), "/bs", message.TextPlain, nil, message.Option{ID: message.URIQuery, Value: []byte("ep=reboot")})
	if err != nil || resp.Code() != codes.Changed {
		t.Fatalf("bootstrap-request: %v %v", resp, err)
	}
	_ = conn.Close()
	start := time.Now()
	if _, err := client.Bootstrap(context.Background(), deviceConfig(t, "reboot", t.TempDir()), e.factory("reboot"), nil); err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("second bootstrap took %v: it waited for the abandoned session", d)
	}
	if st, _ := e.bs.WaitStatus(ctxT(t), "reboot", start); st.State != bootstrap.Finished {
		t.Fatalf("status %+v, want finished", st)
	}
}

// LwM2M 1.2 Core 6.1.7.3 end to end: a device that bootstraps by
// Bootstrap-Pack registers at the DM server with the packed account.
func TestBootstrapPackDevice(t *testing.T) {
	e := startBootstrapEnv(t)
	stored := e.provision(t, "packdev")
	bc := e.factory("packdev")
	bc.Pack = true
	dir := t.TempDir()
	d := runDevice(t, deviceConfig(t, "packdev", dir), bc)
	reg := waitRegistered(t, e.dm, "packdev", 10*time.Second)
	if reg["identity"] != string(stored.Security[1].PublicKeyOrID) || reg["security"] != "psk" {
		t.Fatalf("registration %v, want psk as %q", reg, stored.Security[1].PublicKeyOrID)
	}
	if ok, _ := d.count(); ok != 1 {
		t.Fatalf("%d bootstraps", ok)
	}
	if a, err := client.LoadAccounts(dir); err != nil || a == nil || len(a.Instances(0)) != 2 {
		t.Fatalf("packed accounts not kept with the bootstrap account: %v", err)
	}
}

// BenchmarkBootstrapDTLS measures whole bootstraps over DTLS-PSK on
// loopback: handshake, Bootstrap-Request, Delete x2, Discover, two
// Writes, Finish, and the device's atomic save.
func BenchmarkBootstrapDTLS(b *testing.B) {
	e := startBootstrapEnv(b)
	e.putCredential(b, "bench", "bench-bs", bsKey)
	if code := e.dm.API("PUT", "/api/bootstrap/bench", dmConfig(), nil); code != http.StatusOK {
		b.Fatalf("PUT config: %d", code)
	}
	bc := client.BootstrapConfig{URI: "coaps://" + e.bs.CoAPSAddr().String(), PSKIdentity: "bench-bs", PSKKey: bsKey, Timeout: 5 * time.Second}
	cfg := client.Config{Endpoint: "bench", StateDir: b.TempDir(), RequestTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := client.Bootstrap(context.Background(), cfg, bc, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// testPKI is a CA with a DM server certificate (for 127.0.0.1) and a
// device certificate whose CN is the endpoint.
type testPKI struct {
	caDER                []byte
	pool                 *x509.CertPool
	server               tls.Certificate
	deviceDER, devicePK8 []byte
}

func newTestPKI(t *testing.T, ep string) *testPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, ips []net.IP, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, IPAddresses: ips,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	p := &testPKI{caDER: caDER, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	srvDER, srvKey := issue(2, "dm", []net.IP{net.IPv4(127, 0, 0, 1)}, x509.ExtKeyUsageServerAuth)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	devDER, devKey := issue(3, ep, nil, x509.ExtKeyUsageClientAuth)
	p.deviceDER = devDER
	if p.devicePK8, err = x509.MarshalPKCS8PrivateKey(devKey); err != nil {
		t.Fatal(err)
	}
	return p
}

// LwM2M Core E.1 security mode 2: the bootstrap server hands the device an
// X.509 account (its certificate, key and the server's CA); the device
// registers with it over DTLS with certificates.
func TestBootstrapX509Account(t *testing.T) {
	pki := newTestPKI(t, "certdev")
	dm := servertest.Start(t, func(c *server.Config) {
		c.Certificates = []tls.Certificate{pki.server}
		c.ClientCAs = pki.pool
		c.Bootstrap = bootstrap.Options{CoAPSAddr: "127.0.0.1:0", Logger: bsLogger(t)}
	})
	bs := dm.Bootstrap
	e := &bsEnv{dm: dm, bs: bs}
	e.putCredential(t, "certdev", "certdev-bs", bsKey)
	if err := dm.Store.PutCredential(store.Credential{Endpoint: "certdev", Mode: "x509"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"toDelete": []string{"/0", "/1"},
		"security": map[string]any{"1": map[string]any{
			"uri": "coaps://" + dm.CoAPSAddr().String(), "securityMode": "X509", "serverId": 101,
			"publicKeyOrId": hex.EncodeToString(pki.deviceDER), "secretKey": hex.EncodeToString(pki.devicePK8),
			"serverPublicKey": hex.EncodeToString(pki.caDER),
		}},
		"servers": map[string]any{"0": map[string]any{"shortId": 101, "lifetime": 30}},
	}
	if code := dm.API("PUT", "/api/bootstrap/certdev", cfg, nil); code != http.StatusOK {
		t.Fatalf("PUT config: %d", code)
	}
	runDevice(t, deviceConfig(t, "certdev", t.TempDir()), e.factory("certdev"))
	reg := waitRegistered(t, dm, "certdev", 10*time.Second)
	if reg["security"] != "x509" || reg["identity"] != "certdev" {
		t.Fatalf("registration %v/%v, want x509 as certdev", reg["security"], reg["identity"])
	}
}
