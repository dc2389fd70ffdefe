package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/fotastack/fota/server/events"
)

// testDevice is a tiny LwM2M client written with go-coap directly: text
// values per resource path, SenML JSON for multi-value and composite
// reads, observations with notifications sent on demand.
type testDevice struct {
	t     testing.TB
	ep    string
	cc    *udpClient.Conn
	regID string

	mu        sync.Mutex
	values    map[string]string // "/3/0/0" -> text value
	attrs     map[string][]string
	execArgs  map[string]string
	created   []string
	observers map[string]*observer // path key ("/3/0/1" or "composite:/a,/b")
	silent    bool                 // never answer requests
	accepts   []int                // Accept option of each GET (-1: none)
	root      string               // alternate path the device serves its objects under
}

type observer struct {
	token message.Token
	seq   uint32
	paths []string
	comp  bool
}

func newTestDevice(t testing.TB, ep string) *testDevice {
	return &testDevice{
		t: t, ep: ep,
		values: map[string]string{
			"/3/0/0": "fotastack", "/3/0/1": "test-model", "/3/0/3": "1.0.0",
			"/3/0/9": "90", "/1/0/1": "300",
		},
		attrs: map[string][]string{}, execArgs: map[string]string{}, observers: map[string]*observer{},
	}
}

// dialPlain connects over plain CoAP.
func (d *testDevice) dialPlain(addr net.Addr) *testDevice {
	d.t.Helper()
	cc, err := udp.Dial(addr.String(), options.WithMux(d))
	if err != nil {
		d.t.Fatal(err)
	}
	d.cc = cc
	d.t.Cleanup(func() { _ = cc.Close() })
	return d
}

// pionPSK makes the pion client of a PSK device on pc, the handshake not
// yet done: identity and key, and CCM_8, the suite LwM2M mandates; extra
// options follow.
func pionPSK(pc net.PacketConn, addr net.Addr, identity string, key []byte, extra ...piondtls.ClientOption) (*piondtls.Conn, error) {
	opts := append([]piondtls.ClientOption{
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	}, extra...)
	return piondtls.ClientWithOptions(pc, addr, opts...)
}

// dialPSK connects over DTLS-PSK, handshaking explicitly with a timeout
// (a lazy handshake with a wrong key blocks the first request).
func (d *testDevice) dialPSK(addr net.Addr, identity string, key []byte) error {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	return d.dialPSKOn(pc, addr, identity, key)
}

func (d *testDevice) dialPSKOn(pc net.PacketConn, addr net.Addr, identity string, key []byte) error {
	// It asks the server for a Connection ID (RFC 9146) without using one
	// itself, as constrained devices do.
	conn, err := pionPSK(pc, addr, identity, key, piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
	if err != nil {
		pc.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return err
	}
	d.cc = coapdtls.Client(conn, options.WithMux(d), options.WithCloseSocket())
	d.t.Cleanup(func() { _ = d.cc.Close() })
	return nil
}

func (d *testDevice) post(path string, queries []string, payload []byte) (*Resp, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var opts []message.Option
	for _, q := range queries {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	var body io.ReadSeeker
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	r, err := d.cc.Post(ctx, path, message.AppLinkFormat, body, opts...)
	if err != nil {
		return nil, err
	}
	out := &Resp{Code: r.Code()}
	out.Location, _ = r.Options().LocationPath()
	return out, nil
}

// Resp is what the test device saw of an answer.
type Resp struct {
	Code     codes.Code
	Location string
}

const defaultLinks = `</>;ct=110,</1/0>,</3/0>,</5/0>`

// register sends Register with extra query parameters.
func (d *testDevice) register(extra ...string) *Resp {
	d.t.Helper()
	q := append([]string{"ep=" + d.ep, "lt=300", "lwm2m=1.1", "b=U"}, extra...)
	r, err := d.post("/rd", q, []byte(defaultLinks))
	if err != nil {
		d.t.Fatalf("register %s: %v", d.ep, err)
	}
	if r.Code == codes.Created {
		d.regID = strings.TrimPrefix(r.Location, "/rd/")
		d.regID = strings.TrimPrefix(d.regID, "rd/")
	}
	return r
}

func (d *testDevice) update(q ...string) codes.Code {
	d.t.Helper()
	r, err := d.post("/rd/"+d.regID, q, nil)
	if err != nil {
		d.t.Fatalf("update %s: %v", d.ep, err)
	}
	return r.Code
}

func (d *testDevice) deregister() codes.Code {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := d.cc.Delete(ctx, "/rd/"+d.regID)
	if err != nil {
		d.t.Fatalf("deregister %s: %v", d.ep, err)
	}
	return r.Code()
}

func (d *testDevice) set(path, v string) {
	d.mu.Lock()
	d.values[path] = v
	d.mu.Unlock()
}

func (d *testDevice) get(path string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.values[path]
}

// senml renders the values below the given paths as SenML JSON.
func (d *testDevice) senml(paths ...string) []byte {
	type rec struct {
		N  string `json:"n"`
		VS string `json:"vs"`
	}
	var recs []rec
	d.mu.Lock()
	for p, v := range d.values {
		for _, base := range paths {
			if p == base || strings.HasPrefix(p, strings.TrimSuffix(base, "/")+"/") {
				recs = append(recs, rec{N: p, VS: v})
				break
			}
		}
	}
	d.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].N < recs[j].N })
	b, _ := json.Marshal(recs)
	return b
}

// notify sends a confirmable notification to the observers of key; it
// fails if the server does not acknowledge it.
func (d *testDevice) notify(key string) error {
	d.mu.Lock()
	o := d.observers[key]
	if o == nil {
		d.mu.Unlock()
		return fmt.Errorf("no observer of %s", key)
	}
	o.seq++
	seq, tok, paths, comp := o.seq, o.token, o.paths, o.comp
	d.mu.Unlock()
	var body []byte
	cf := message.TextPlain
	if comp || strings.Count(paths[0], "/") < 3 {
		body, cf = d.senml(paths...), message.AppSenmlJSON
	} else {
		body = []byte(d.get(paths[0]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := d.cc.AcquireMessage(ctx)
	defer d.cc.ReleaseMessage(m)
	m.SetCode(codes.Content)
	m.SetToken(tok)
	m.SetObserve(seq)
	m.SetType(message.Confirmable)
	m.SetContentFormat(cf)
	m.SetBody(bytes.NewReader(body))
	return d.cc.WriteMessage(m)
}

func (d *testDevice) observerOf(key string) *observer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.observers[key]
}

// ServeCOAP answers the server's requests.
func (d *testDevice) ServeCOAP(w mux.ResponseWriter, r *mux.Message) {
	d.mu.Lock()
	silent := d.silent
	d.mu.Unlock()
	if silent {
		return
	}
	path, _ := r.Options().Path()
	path = "/" + strings.Trim(path, "/")
	if d.root != "" {
		if !strings.HasPrefix(path, d.root+"/") && path != d.root {
			_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
			return
		}
		path = "/" + strings.Trim(strings.TrimPrefix(path, d.root), "/")
	}
	queries, _ := r.Options().Queries()
	var body []byte
	if r.Body() != nil {
		body, _ = io.ReadAll(r.Body())
	}
	obs, obsErr := r.Options().Observe()
	isObs := obsErr == nil
	switch r.Code() {
	case codes.GET:
		acc, accErr := r.Options().Accept()
		d.mu.Lock()
		if accErr == nil {
			d.accepts = append(d.accepts, int(acc))
		} else {
			d.accepts = append(d.accepts, -1)
		}
		d.mu.Unlock()
		if accErr == nil && acc == message.AppLinkFormat {
			var links []string
			d.mu.Lock()
			for p := range d.values {
				if strings.HasPrefix(p, path) {
					links = append(links, "<"+p+">")
				}
			}
			d.mu.Unlock()
			sort.Strings(links)
			_ = w.SetResponse(codes.Content, message.AppLinkFormat, bytes.NewReader([]byte(strings.Join(links, ","))))
			return
		}
		if isObs {
			d.observe(path, []string{path}, false, r.Token(), obs)
		}
		if strings.Count(path, "/") < 3 {
			_ = w.SetResponse(codes.Content, message.AppSenmlJSON, bytes.NewReader(d.senml(path)))
		} else {
			d.mu.Lock()
			v, ok := d.values[path]
			d.mu.Unlock()
			if !ok {
				_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
				return
			}
			_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte(v)))
		}
		if isObs && obs == 0 {
			w.Message().SetObserve(0)
		}
	case codes.FETCH:
		var names []struct{ N string }
		if err := json.Unmarshal(body, &names); err != nil {
			_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
			return
		}
		var paths []string
		for _, n := range names {
			paths = append(paths, n.N)
		}
		if isObs {
			d.observe("composite:"+strings.Join(paths, ","), paths, true, r.Token(), obs)
		}
		_ = w.SetResponse(codes.Content, message.AppSenmlJSON, bytes.NewReader(d.senml(paths...)))
		if isObs && obs == 0 {
			w.Message().SetObserve(0)
		}
	case codes.PUT:
		if len(body) == 0 && len(queries) > 0 {
			d.mu.Lock()
			d.attrs[path] = queries
			d.mu.Unlock()
			_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
			return
		}
		d.set(path, string(body))
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case codes.POST:
		switch strings.Count(path, "/") {
		case 3:
			d.mu.Lock()
			d.execArgs[path] = string(body)
			d.mu.Unlock()
			_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
		case 1:
			d.mu.Lock()
			d.created = append(d.created, string(body))
			d.mu.Unlock()
			_ = w.SetResponse(codes.Created, message.TextPlain, nil)
			w.Message().SetOptionString(message.LocationPath, strings.Trim(path, "/"))
			w.Message().AddOptionString(message.LocationPath, "1")
		default:
			d.set(path+"/partial", string(body))
			_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
		}
	case codes.IPATCH:
		var recs []struct {
			N  string `json:"n"`
			VS string `json:"vs"`
		}
		if err := json.Unmarshal(body, &recs); err != nil {
			_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
			return
		}
		for _, rc := range recs {
			d.set(rc.N, rc.VS)
		}
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case codes.DELETE:
		d.mu.Lock()
		n := 0
		for p := range d.values {
			if strings.HasPrefix(p, path+"/") {
				delete(d.values, p)
				n++
			}
		}
		d.mu.Unlock()
		if n == 0 {
			_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
			return
		}
		_ = w.SetResponse(codes.Deleted, message.TextPlain, nil)
	default:
		_ = w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
	}
}

func (d *testDevice) observe(key string, paths []string, comp bool, tok message.Token, obs uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if obs == 1 {
		delete(d.observers, key)
		return
	}
	d.observers[key] = &observer{token: append(message.Token(nil), tok...), paths: paths, comp: comp}
}

// waitEvent waits for an event of type typ for endpoint ep.
func waitEvent(t testing.TB, ch <-chan serverEvent, typ, ep string) serverEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Type == typ && e.Endpoint == ep {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event for %s", typ, ep)
		}
	}
}

type serverEvent = events.Event
