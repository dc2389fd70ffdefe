package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
)

// clientSessions is a device's memory of its DTLS session (pion's
// SessionStore), which a device keeps in flash across a reboot.
type clientSessions struct {
	mu sync.Mutex
	m  map[string]piondtls.Session
}

func (c *clientSessions) Set(k []byte, s piondtls.Session) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[string(k)] = s
	return nil
}

func (c *clientSessions) Get(k []byte) (piondtls.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[string(k)], nil
}

func (c *clientSessions) Del(k []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, string(k))
	return nil
}

// countingPC counts the datagrams a client receives: the server's flights.
type countingPC struct {
	net.PacketConn
	muted atomic.Bool
	in    atomic.Int64
}

func (c *countingPC) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.in.Add(1)
	}
	return n, a, err
}

func (c *countingPC) WriteTo(p []byte, a net.Addr) (int, error) {
	if c.muted.Load() {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, a)
}

// handshakeWith runs a PSK handshake of identity from a new socket, with
// the device's session memory, and returns how many datagrams the server
// sent during it and the identity the server's session shows.
func handshakeWith(t *testing.T, srv *DTLS, store *clientSessions, identity string) (flights int64, seen string) {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pc := &countingPC{PacketConn: udp}
	conn, err := piondtls.ClientWithOptions(pc, srv.Addr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return pskKey, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()),
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
		piondtls.WithSessionStore(store),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	flights = pc.in.Load()
	cc := coapdtls.Client(conn)
	seen = getID(t, cc)
	// Power cut: nothing more is sent (no close_notify), the socket goes.
	pc.muted.Store(true)
	cc.Close()
	udp.Close()
	return flights, seen
}

// A device that reboots and offers the session it kept resumes it with an
// abbreviated handshake (RFC 5246 7.3): the server sends two flights
// (HelloVerifyRequest; ServerHello, ChangeCipherSpec, Finished) instead
// of three, and the resumed session carries the identity of the first.
// A server that keeps no sessions answers the same offer with a full
// handshake.
func TestRebootResumesSession(t *testing.T) {
	for _, keep := range []int{10, 0} {
		srv, err := ListenDTLS("127.0.0.1:0", DTLSConfig{
			Handler:           startDTLS(t).cfg.Handler,
			PSK:               func([]byte) ([]byte, error) { return pskKey, nil },
			Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
			ResumableSessions: keep,
		})
		if err != nil {
			t.Fatal(err)
		}
		store := &clientSessions{m: map[string]piondtls.Session{}}
		full, id1 := handshakeWith(t, srv, store, "dev-1")
		if id1 != "dev-1" {
			t.Fatalf("identity %q", id1)
		}
		again, id2 := handshakeWith(t, srv, store, "dev-1")
		kept, resumed := srv.ResumptionStats()
		srv.Close()
		if keep == 0 {
			if again != full || resumed != 0 {
				t.Fatalf("server without resumption: %d flights then %d, %d resumed; want a full handshake twice", full, again, resumed)
			}
			continue
		}
		if full != 3 || again != 2 || resumed != 1 || kept < 1 {
			t.Fatalf("server flights: %d in the first handshake, %d after the reboot (want 3 and 2); %d resumed, %d kept", full, again, resumed, kept)
		}
		t.Logf("server flights: full handshake %d, resumed %d", full, again)
		if id2 != "dev-1" {
			t.Fatalf("resumed session has identity %q, want dev-1", id2)
		}
	}
}

// The store is bounded: past its size the oldest session goes.
func TestResumptionStoreBounded(t *testing.T) {
	r := newResumptionStore(3, time.Hour)
	for i := range 10 {
		_ = r.Set([]byte{byte(i)}, piondtls.Session{ID: []byte{byte(i)}, Secret: []byte("s")})
	}
	if n, _ := r.stats(); n != 3 {
		t.Fatalf("%d sessions kept, want 3", n)
	}
	if s, _ := r.Get([]byte{0}); len(s.ID) != 0 {
		t.Fatal("oldest session still there")
	}
	if s, _ := r.Get([]byte{9}); len(s.ID) != 1 {
		t.Fatal("newest session lost")
	}
	old := newResumptionStore(3, time.Nanosecond)
	_ = old.Set([]byte{1}, piondtls.Session{ID: []byte{1}})
	time.Sleep(time.Millisecond)
	if s, _ := old.Get([]byte{1}); len(s.ID) != 0 {
		t.Fatal("expired session resumed")
	}
}
