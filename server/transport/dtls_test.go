package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

var pskKey = []byte("transport-test-key")

// startDTLS starts a listener whose handler answers GET /id with the
// session's PSK identity.
func startDTLS(t *testing.T) *DTLS {
	t.Helper()
	d, err := ListenDTLS("127.0.0.1:0", DTLSConfig{
		Handler: mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
			s := SessionFrom(r.Context())
			if s == nil {
				_ = w.SetResponse(codes.InternalServerError, message.TextPlain, nil)
				return
			}
			_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte(s.Identity)))
		}),
		PSK: func(id []byte) ([]byte, error) {
			if string(id) == "wrong" {
				return nil, errors.New("unknown identity")
			}
			return pskKey, nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// mutablePC is a client socket that can "crash": after mute, nothing is
// sent, so closing the DTLS conn sends no close_notify (as when a device
// loses power).
type mutablePC struct {
	net.PacketConn
	muted atomic.Bool
}

func (m *mutablePC) WriteTo(p []byte, a net.Addr) (int, error) {
	if m.muted.Load() {
		return len(p), nil
	}
	return m.PacketConn.WriteTo(p, a)
}

// dialPSK makes the pion client of a PSK device (handshake not yet
// done): CCM_8 as LwM2M mandates, and it asks the server for a Connection
// ID (RFC 9146) without using one itself, as constrained devices do.
func dialPSK(pc net.PacketConn, server net.Addr, identity string) (*piondtls.Conn, error) {
	return piondtls.ClientWithOptions(pc, server,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return pskKey, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()),
	)
}

// dial handshakes a PSK client on pc and wraps it in CoAP.
func dial(t *testing.T, pc net.PacketConn, server net.Addr, identity string) (*udpClient.Conn, error) {
	t.Helper()
	conn, err := dialPSK(pc, server, identity)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	cc := coapdtls.Client(conn)
	t.Cleanup(func() { cc.Close() })
	return cc, nil
}

func getID(t testing.TB, cc *udpClient.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := cc.Get(ctx, "/id")
	if err != nil {
		t.Fatalf("GET over DTLS: %v", err)
	}
	b, _ := r.ReadBody()
	return string(b)
}

// RFC 6347 4.2.8: a device that restarts and handshakes again from the
// same address and port gets a fresh session at once; the old association
// is dropped.
func TestRestartFromSamePortGetsFreshSession(t *testing.T) {
	srv := startDTLS(t)
	udp1, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	local := udp1.LocalAddr().(*net.UDPAddr)
	pc1 := &mutablePC{PacketConn: udp1}
	cc1, err := dial(t, pc1, srv.Addr(), "first")
	if err != nil {
		t.Fatal(err)
	}
	if got := getID(t, cc1); got != "first" {
		t.Fatalf("identity %q", got)
	}
	// Power cut: the device says nothing more and forgets its session.
	pc1.muted.Store(true)
	cc1.Close()
	udp1.Close()

	udp2, err := net.ListenUDP("udp", local)
	if err != nil {
		t.Fatalf("rebind %v: %v", local, err)
	}
	start := time.Now()
	cc2, err := dial(t, udp2, srv.Addr(), "second")
	if err != nil {
		t.Fatalf("handshake after restart from the same port: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("new handshake took %v", took)
	}
	if got := getID(t, cc2); got != "second" {
		t.Fatalf("identity after restart %q, want second", got)
	}
	hs, _, assocs := srv.Stats()
	if hs != 2 || assocs != 1 {
		t.Fatalf("handshakes %d, associations %d; want 2 and 1", hs, assocs)
	}
	if n := len(srv.Sessions()); n != 1 {
		t.Fatalf("%d sessions, want 1 (old one dropped)", n)
	}
}

// proxy forwards datagrams between one client and the server. It can
// rewrite the record version of ClientHello records and move to a new
// source port (a NAT rebinding).
type proxy struct {
	front   *net.UDPConn // the client talks to this
	server  net.Addr
	back    atomic.Pointer[net.UDPConn] // talks to the server
	client  atomic.Pointer[net.UDPAddr]
	version [2]byte // rewrite ClientHello record versions to this if non-zero
	wg      sync.WaitGroup
}

func newProxy(t *testing.T, server net.Addr, version [2]byte) *proxy {
	t.Helper()
	f, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{front: f, server: server, version: version}
	p.rebind(t)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := f.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.client.Store(from)
			b := append([]byte(nil), buf[:n]...)
			if p.version != [2]byte{} && isClientHello(b) {
				b[1], b[2] = p.version[0], p.version[1]
			}
			_, _ = p.back.Load().WriteTo(b, p.server)
		}
	}()
	t.Cleanup(func() {
		f.Close()
		p.back.Load().Close()
		p.wg.Wait()
	})
	return p
}

// rebind moves the proxy's server-side socket to a new port.
func (p *proxy) rebind(t *testing.T) {
	b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	old := p.back.Swap(b)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, _, err := b.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if c := p.client.Load(); c != nil {
				_, _ = p.front.WriteTo(buf[:n], c)
			}
		}
	}()
	if old != nil {
		old.Close()
	}
}

// Embedded stacks send the first ClientHello with record version 0xFE00
// (mbedTLS) or 0xFEFF (DTLS 1.0 style); both must be accepted.
func TestClientHelloRecordVersions(t *testing.T) {
	for _, v := range [][2]byte{{0xfe, 0x00}, {0xfe, 0xff}} {
		t.Run(fmt.Sprintf("%02x%02x", v[0], v[1]), func(t *testing.T) {
			srv := startDTLS(t)
			p := newProxy(t, srv.Addr(), v)
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			cc, err := dial(t, pc, p.front.LocalAddr(), "old-version")
			if err != nil {
				t.Fatalf("handshake with ClientHello record version %x: %v", v, err)
			}
			if got := getID(t, cc); got != "old-version" {
				t.Fatalf("identity %q", got)
			}
		})
	}
}

// RFC 9146: with a Connection ID, a device whose NAT port changes keeps
// its session.
func TestConnectionIDSurvivesNATRebinding(t *testing.T) {
	srv := startDTLS(t)
	p := newProxy(t, srv.Addr(), [2]byte{})
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := dial(t, pc, p.front.LocalAddr(), "nb-iot")
	if err != nil {
		t.Fatal(err)
	}
	getID(t, cc)
	before := srv.Sessions()[0].RemoteAddr().String()
	p.rebind(t)
	if got := getID(t, cc); got != "nb-iot" {
		t.Fatalf("after rebinding: %q", got)
	}
	after := srv.Sessions()[0].RemoteAddr().String()
	if before == after {
		t.Fatalf("session address did not move (%s)", after)
	}
	if hs, _, _ := srv.Stats(); hs != 1 {
		t.Fatalf("%d handshakes; the rebinding must not need a new one", hs)
	}
}

// A wrong identity fails the handshake and leaves no association behind.
func TestFailedHandshakeLeavesNothing(t *testing.T) {
	srv := startDTLS(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, pc, srv.Addr(), "wrong"); err == nil {
		t.Fatal("handshake with refused identity succeeded")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, refused, assocs := srv.Stats()
		if refused >= 1 && assocs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refused %d, associations %d", refused, assocs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KeepUntil ties a session's life to the registration, and the sweeper
// closes it when that time passes.
func TestSessionLivesUntilKeepUntil(t *testing.T) {
	srv := startDTLS(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := dial(t, pc, srv.Addr(), "k")
	if err != nil {
		t.Fatal(err)
	}
	getID(t, cc)
	s := srv.Sessions()[0]
	s.KeepUntil(time.Now().Add(1500 * time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	if !s.Alive() {
		t.Fatal("session closed before its time")
	}
	deadline := time.Now().Add(3 * time.Second)
	for s.Alive() {
		if time.Now().After(deadline) {
			t.Fatal("session not closed after its time")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRecordHelpers(t *testing.T) {
	ch := []byte{22, 0xfe, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0}
	if !isClientHello(ch) {
		t.Fatal("ClientHello not recognised")
	}
	fixRecordVersions(ch)
	if ch[1] != 0xfe || ch[2] != 0xfd {
		t.Fatalf("version not rewritten: %x", ch[1:3])
	}
	epoch1 := []byte{22, 0xfe, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0}
	fixRecordVersions(epoch1)
	if epoch1[2] != 0x00 {
		t.Fatal("epoch 1 record rewritten")
	}
	if isClientHello([]byte{22, 0xfe, 0xfd}) {
		t.Fatal("short datagram taken for ClientHello")
	}
	cid := []byte{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0}
	if got := recordCID(cid, 8); !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("cid %x", got)
	}
}

func FuzzRecordRouting(f *testing.F) {
	f.Add([]byte{22, 0xfe, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0})
	f.Add([]byte{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = isClientHello(b)
		fixRecordVersions(b)
		_ = recordCID(b, cidSize)
	})
}

// deafPC sends its first datagram (a ClientHello) and nothing more, and
// never receives: a peer whose handshake stays in progress at the server
// until it times out there, and which sends no retransmission that would
// start another.
type deafPC struct {
	net.PacketConn
	closed chan struct{}
	sent   atomic.Bool
}

func (p *deafPC) WriteTo(b []byte, a net.Addr) (int, error) {
	if p.sent.Swap(true) {
		return len(b), nil
	}
	return p.PacketConn.WriteTo(b, a)
}

func (p *deafPC) ReadFrom([]byte) (int, net.Addr, error) {
	<-p.closed
	return 0, nil, net.ErrClosed
}

func (p *deafPC) Close() error {
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	return p.PacketConn.Close()
}

// Past MaxPendingHandshakes a ClientHello is dropped; once the stalled
// handshake has timed out, a new one is admitted again.
func TestPendingHandshakesBounded(t *testing.T) {
	d, err := ListenDTLS("127.0.0.1:0", DTLSConfig{
		Handler:              mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {}),
		PSK:                  func([]byte) ([]byte, error) { return pskKey, nil },
		Logger:               slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxPendingHandshakes: 1,
		HandshakeTimeout:     time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	deaf := &deafPC{PacketConn: udp, closed: make(chan struct{})}
	stalled, err := dialPSK(deaf, d.Addr(), "stalled")
	if err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithCancel(context.Background())
	go func() { _ = stalled.HandshakeContext(hctx) }()
	defer func() { hcancel(); stalled.Close() }()
	for d.pending.Load() != 1 {
		time.Sleep(5 * time.Millisecond)
	}

	shortDial := func(identity string) error {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		defer pc.Close()
		conn, err := dialPSK(pc, d.Addr(), identity)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		return conn.HandshakeContext(ctx)
	}
	if err := shortDial("second"); err == nil {
		t.Fatal("a second handshake was admitted past MaxPendingHandshakes=1")
	}
	if _, refused, _ := d.Stats(); refused == 0 {
		t.Fatal("the dropped ClientHello was not counted as refused")
	}
	// The stalled handshake times out at the server (1 s), which frees
	// the slot.
	deadline := time.Now().Add(5 * time.Second)
	for d.pending.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pending %d after the stalled handshake timed out", d.pending.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := shortDial("third"); err != nil {
		t.Fatalf("handshake after the slot was freed: %v", err)
	}
	// The server counts the handshake done once its last flight is out,
	// which may be after the client has finished.
	for deadline := time.Now().Add(2 * time.Second); d.pending.Load() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pending %d after a completed handshake, want 0", d.pending.Load())
		}
	}
}

// An identity the store refuses is answered with the unknown_psk_identity
// alert (RFC 4279 2), not pion's internal_error: the client can tell its
// operator what is wrong.
func TestUnknownIdentityAlert(t *testing.T) {
	srv := startDTLS(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	w := &alertWatch{PacketConn: pc}
	if _, err := dial(t, w, srv.Addr(), "wrong"); err == nil {
		t.Fatal("handshake with a refused identity succeeded")
	}
	if got := w.desc.Load(); got != alertUnknownPSKIdentity {
		t.Fatalf("alert description %d, want %d (unknown_psk_identity)", got, alertUnknownPSKIdentity)
	}
}

// alertWatch records the description of the plaintext alert it reads.
type alertWatch struct {
	net.PacketConn
	desc atomic.Int32
}

func (w *alertWatch) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := w.PacketConn.ReadFrom(p)
	if n == recordHeaderLen+2 && p[0] == contentTypeAlert {
		w.desc.Store(int32(p[recordHeaderLen+1]))
	}
	return n, a, err
}

func TestUnknownIdentityAlertRewrite(t *testing.T) {
	alert := func(epoch byte, desc byte) []byte {
		return []byte{contentTypeAlert, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, 1, 0, 2, 2, desc}
	}
	in := append(alert(0, alertInternalError), alert(1, alertInternalError)...)
	out := unknownIdentityAlert(in)
	if out[14] != alertUnknownPSKIdentity || out[29] != alertInternalError || in[14] != alertInternalError {
		t.Fatalf("rewrite %v from %v", out, in)
	}
	hs := []byte{contentTypeHandshake, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 2, alertInternalError}
	if got := unknownIdentityAlert(hs); got[14] != alertInternalError {
		t.Fatal("a handshake record was changed")
	}
	if got := unknownIdentityAlert([]byte{1, 2, 3}); len(got) != 3 {
		t.Fatal("a short datagram was changed")
	}
}
