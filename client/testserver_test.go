package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// testServer is a minimal LwM2M registration interface on a real socket
// on 127.0.0.1: enough to drive the client before and beside the real
// server package. It records what the device sends and keeps each
// registration's connection so tests can send requests to the device.
type testServer struct {
	t    testing.TB
	uri  string
	msgs chan srvMsg

	mu       sync.Mutex
	next     int
	regs     map[string]*testReg // by location
	reject   int                 // answer this many Registers with 4.03
	attempts int
	sent     [][]byte // Send payloads
}

type testReg struct {
	ep, loc string
	query   []string
	links   string
	conn    *udpclient.Conn
}

// srvMsg is one registration-interface message the server got.
type srvMsg struct {
	op    string // register, update, deregister, send
	loc   string
	query []string
	body  string
	code  codes.Code // what we answered
}

// testPSKs are the credentials the DTLS test server knows.
var testPSKs = map[string][]byte{"dev-id": []byte("secret-key-0123")}

func newTestServer(t testing.TB, secure bool) *testServer {
	t.Helper()
	s := &testServer{t: t, msgs: make(chan srvMsg, 100), regs: map[string]*testReg{}}
	m := mux.HandlerFunc(s.serve)
	if !secure {
		l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := udp.NewServer(options.WithMux(m))
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { srv.Stop(); _ = l.Close() })
		s.uri = "coap://" + l.LocalAddr().String()
		return s
	}
	l, err := coapnet.NewDTLSListener("udp", "127.0.0.1:0", coapnet.NewDTLSServerOptions(
		piondtls.WithPSK(func(id []byte) ([]byte, error) {
			k, ok := testPSKs[string(id)]
			if !ok {
				return nil, fmt.Errorf("unknown identity %q", id)
			}
			return k, nil
		}),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		piondtls.WithConnectionIDGenerator(piondtls.RandomCIDGenerator(8)),
	))
	if err != nil {
		t.Fatal(err)
	}
	srv := dtls.NewServer(options.WithMux(m), options.WithMTU(8192))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); _ = l.Close() })
	s.uri = "coaps://" + l.Addr().String()
	return s
}

func (s *testServer) serve(w mux.ResponseWriter, r *mux.Message) {
	path, _ := r.Options().Path()
	qs, _ := r.Options().Queries()
	var body []byte
	if r.Body() != nil {
		body, _ = io.ReadAll(r.Body())
	}
	msg := srvMsg{loc: path, query: qs, body: string(body)}
	answer := func(c codes.Code, opts ...message.Option) {
		msg.code = c
		_ = w.SetResponse(c, message.TextPlain, nil, opts...)
		s.msgs <- msg
	}
	if r.Code() == codes.Content {
		// A notification nobody observes (RFC 7641 3.6): Reset.
		// go-coap answers a confirmable message with an ACK of its own, so
		// the Reset goes out on the session directly, first.
		msg.op = "notify"
		cc := w.Conn().(*udpclient.Conn)
		rst := cc.AcquireMessage(r.Context())
		rst.SetCode(codes.Empty)
		rst.SetType(message.Reset)
		rst.SetMessageID(r.MessageID())
		_ = cc.Session().WriteMessage(rst)
		cc.ReleaseMessage(rst)
		s.msgs <- msg
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Code() == codes.POST && path == "/rd":
		msg.op = "register"
		s.attempts++
		if s.reject > 0 {
			s.reject--
			answer(codes.Forbidden)
			return
		}
		ep := ""
		for _, q := range qs {
			if v, ok := strings.CutPrefix(q, "ep="); ok {
				ep = v
			}
		}
		for loc, reg := range s.regs {
			if reg.ep == ep {
				delete(s.regs, loc)
			}
		}
		s.next++
		id := fmt.Sprintf("r%d", s.next)
		msg.loc = "/rd/" + id
		s.regs[msg.loc] = &testReg{ep: ep, loc: msg.loc, query: qs, links: string(body), conn: w.Conn().(*udpclient.Conn)}
		answer(codes.Created, message.Option{ID: message.LocationPath, Value: []byte("rd")},
			message.Option{ID: message.LocationPath, Value: []byte(id)})
	case r.Code() == codes.POST && path == "/dp":
		msg.op = "send"
		s.sent = append(s.sent, body)
		answer(codes.Changed)
	case r.Code() == codes.POST && strings.HasPrefix(path, "/rd/"):
		msg.op = "update"
		reg, ok := s.regs[path]
		if !ok {
			answer(codes.NotFound)
			return
		}
		reg.conn = w.Conn().(*udpclient.Conn) // a device back from sleep has a new socket
		if len(body) > 0 {
			reg.links = string(body)
		}
		answer(codes.Changed)
	case r.Code() == codes.DELETE && strings.HasPrefix(path, "/rd/"):
		msg.op = "deregister"
		if _, ok := s.regs[path]; !ok {
			answer(codes.NotFound)
			return
		}
		delete(s.regs, path)
		answer(codes.Deleted)
	default:
		answer(codes.NotFound)
	}
}

// forget drops every registration, as a server that lost its state does.
func (s *testServer) forget() {
	s.mu.Lock()
	s.regs = map[string]*testReg{}
	s.mu.Unlock()
}

// reg returns the registration of endpoint ep.
func (s *testServer) reg(ep string) *testReg {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.regs {
		if r.ep == ep {
			return r
		}
	}
	return nil
}

// expect waits for the next message of kind op (skipping others).
func (s *testServer) expect(op string, within time.Duration) srvMsg {
	s.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-s.msgs:
			if m.op == op {
				return m
			}
		case <-deadline:
			s.t.Fatalf("no %s within %v", op, within)
		}
	}
}

// device is the server side of a registered device: requests go over
// the session the device registered from.
type device struct {
	t    testing.TB
	conn *udpclient.Conn
}

func (s *testServer) device(ep string) *device {
	s.t.Helper()
	r := s.reg(ep)
	if r == nil {
		s.t.Fatalf("%s is not registered", ep)
	}
	return &device{t: s.t, conn: r.conn}
}

// response is a device answer, copied out of go-coap's pool.
type response struct {
	code  codes.Code
	cf    message.MediaType
	hasCF bool
	body  []byte
	opts  message.Options
}

func copyResponse(m *pool.Message) response {
	r := response{code: m.Code()}
	if cf, err := m.ContentFormat(); err == nil {
		r.cf, r.hasCF = cf, true
	}
	if m.Body() != nil {
		r.body, _ = io.ReadAll(m.Body())
	}
	r.opts = append(message.Options(nil), m.Options()...)
	return r
}

// do sends one request: method, path, optional payload in cf (-1: none),
// more options.
func (d *device) do(code codes.Code, path string, cf int, body []byte, opts ...message.Option) response {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := d.conn.AcquireMessage(ctx)
	defer d.conn.ReleaseMessage(req)
	req.SetCode(code)
	tok, _ := message.GetToken()
	req.SetToken(tok)
	if err := req.SetPath(path); err != nil {
		d.t.Fatal(err)
	}
	for _, o := range opts {
		req.AddOptionBytes(o.ID, o.Value)
	}
	if cf >= 0 {
		req.SetContentFormat(message.MediaType(cf))
	}
	if body != nil {
		req.SetBody(bytes.NewReader(body))
	}
	resp, err := d.conn.Do(req)
	if err != nil {
		d.t.Fatalf("%v %s: %v", code, path, err)
	}
	defer d.conn.ReleaseMessage(resp)
	return copyResponse(resp)
}

func acceptOpt(cf uint32) message.Option {
	buf := make([]byte, 4)
	n, _ := message.EncodeUint32(buf, cf)
	return message.Option{ID: message.Accept, Value: buf[:n]}
}

func queryOpt(q string) message.Option {
	return message.Option{ID: message.URIQuery, Value: []byte(q)}
}

// events collects a client's events for tests.
type events struct {
	ch chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 100)} }

func (e *events) add(ev Event) { e.ch <- ev }

// wait returns the next event of kind k, failing after within.
func (e *events) wait(t *testing.T, k EventKind, within time.Duration) Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == k {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v event within %v", k, within)
			return Event{}
		}
	}
}

// startClient starts a client against s and waits until it is registered.
func startClient(t *testing.T, s *testServer, mod func(*Config)) (*Client, *events) {
	t.Helper()
	ev := newEvents()
	cfg := Config{
		Endpoint: "dev-" + strings.ReplaceAll(t.Name(), "/", "-"), ServerURI: s.uri,
		Lifetime: 60 * time.Second, RequestTimeout: 3 * time.Second, HandshakeTimeout: 3 * time.Second,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Device:  DeviceInfo{Manufacturer: "fotastack", Model: "sim-1", Serial: "42", FirmwareVersion: "1.0.0"},
		OnEvent: ev.add,
		Logger:  testLogger(t),
	}
	if strings.HasPrefix(s.uri, "coaps") {
		cfg.PSKIdentity, cfg.PSKKey = "dev-id", testPSKs["dev-id"]
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ev.wait(t, EventRegistered, 10*time.Second)
	return c, ev
}

// testLogger logs at debug level into the test log when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
