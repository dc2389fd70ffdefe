package transport

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// startHibernating starts a listener that hibernates sessions idle for
// 200 ms; its handler answers GET /id with the session's identity.
func startHibernating(t *testing.T) *DTLS {
	t.Helper()
	d, err := ListenDTLS("127.0.0.1:0", DTLSConfig{
		Handler: mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
			s := SessionFrom(r.Context())
			_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte(s.Identity)))
		}),
		PSK:            func([]byte) ([]byte, error) { return pskKey, nil },
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		HibernateAfter: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// dialServing is dial with a handler on the device side, so that the
// server's own requests get an answer: GET /3/0/0 returns "fota-dev".
func dialServing(t testing.TB, pc net.PacketConn, server net.Addr, identity string) *udpClient.Conn {
	t.Helper()
	conn, err := dialPSK(pc, server, identity)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	cc := coapdtls.Client(conn, options.WithMux(mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
		_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte("fota-dev")))
	})))
	t.Cleanup(func() { cc.Close() })
	return cc
}

func waitHibernated(t *testing.T, s *Session) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !s.Hibernated() {
		if time.Now().After(deadline) {
			t.Fatal("session did not hibernate")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An idle session hibernates (its goroutines end), and the device's next
// request resumes it without a handshake.
func TestHibernatedSessionResumesOnDeviceRequest(t *testing.T) {
	srv := startHibernating(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc := dialServing(t, pc, srv.Addr(), "sleepy")
	if got := getID(t, cc); got != "sleepy" {
		t.Fatalf("identity %q", got)
	}
	s := srv.Sessions()[0]
	live := runtime.NumGoroutine()
	waitHibernated(t, s)
	// The pion and go-coap goroutines of the session end.
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > live-2 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d live, %d hibernated: the session's did not end", live, runtime.NumGoroutine())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !s.Alive() {
		t.Fatal("hibernated session reported dead")
	}
	for i := 0; i < 3; i++ {
		if got := getID(t, cc); got != "sleepy" {
			t.Fatalf("after hibernation %d: identity %q", i, got)
		}
		if srv.Sessions()[0] != s {
			t.Fatal("resumed session is a new Session value")
		}
		waitHibernated(t, s)
	}
	hs, _, _ := srv.Stats()
	hib, res, asleep := srv.HibernationStats()
	if hs != 1 || hib < 4 || res < 3 || asleep != 1 {
		t.Fatalf("handshakes %d hibernations %d resumptions %d asleep %d; want 1, >=4, >=3, 1", hs, hib, res, asleep)
	}
}

// A request the server sends to a hibernated device resumes the session
// (the device's address is kept) and gets the device's answer.
func TestServerRequestResumesHibernatedSession(t *testing.T) {
	srv := startHibernating(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc := dialServing(t, pc, srv.Addr(), "meter")
	getID(t, cc)
	s := srv.Sessions()[0]
	waitHibernated(t, s)
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, done, err := s.Use(ctx)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		r, err := conn.Get(ctx, "/3/0/0")
		done()
		cancel()
		if err != nil {
			t.Fatalf("server GET to a hibernated device: %v", err)
		}
		b, _ := r.ReadBody()
		if r.Code() != codes.Content || string(b) != "fota-dev" {
			t.Fatalf("server GET: %v %q", r.Code(), b)
		}
		waitHibernated(t, s)
	}
	if hs, _, _ := srv.Stats(); hs != 1 {
		t.Fatalf("%d handshakes; resuming must not need one", hs)
	}
}

// RFC 9146 with hibernation: the device's NAT port changes while its
// session hibernates; its next record, routed by Connection ID, resumes
// the session at the new address without a handshake.
func TestNATRebindingWhileHibernated(t *testing.T) {
	srv := startHibernating(t)
	p := newProxy(t, srv.Addr(), [2]byte{})
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc := dialServing(t, pc, p.front.LocalAddr(), "nb-iot")
	getID(t, cc)
	s := srv.Sessions()[0]
	waitHibernated(t, s)
	before := s.RemoteAddr().String()
	p.rebind(t)
	if got := getID(t, cc); got != "nb-iot" {
		t.Fatalf("after rebinding: %q", got)
	}
	if after := s.RemoteAddr().String(); after == before {
		t.Fatalf("session address did not move (%s)", after)
	}
	// The server reaches the device at its new address.
	waitHibernated(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, done, err := s.Use(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if _, err := conn.Get(ctx, "/3/0/0"); err != nil {
		t.Fatalf("server GET after rebinding: %v", err)
	}
	if hs, _, _ := srv.Stats(); hs != 1 {
		t.Fatalf("%d handshakes; want 1", hs)
	}
}

// A hibernated session past its KeepUntil is dropped like a live one.
func TestHibernatedSessionExpires(t *testing.T) {
	var closed = make(chan *Session, 1)
	srv, err := ListenDTLS("127.0.0.1:0", DTLSConfig{
		Handler: mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
			_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte(SessionFrom(r.Context()).Identity)))
		}),
		PSK:            func([]byte) ([]byte, error) { return pskKey, nil },
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		HibernateAfter: 100 * time.Millisecond,
		OnClose:        func(s *Session) { closed <- s },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc := dialServing(t, pc, srv.Addr(), "x")
	getID(t, cc)
	s := srv.Sessions()[0]
	waitHibernated(t, s)
	s.KeepUntil(time.Now().Add(200 * time.Millisecond))
	select {
	case got := <-closed:
		if got != s {
			t.Fatal("OnClose got another session")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hibernated session not closed at its time")
	}
	if s.Alive() {
		t.Fatal("expired session still alive")
	}
	if _, _, err := s.Use(context.Background()); err == nil {
		t.Fatal("Use on a closed session succeeded")
	}
	if _, _, assocs := srv.Stats(); assocs != 0 {
		t.Fatalf("%d associations left", assocs)
	}
}
