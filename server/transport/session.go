package transport

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"errors"

	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Security modes of a session.
const (
	SecurityNone = "none"
	SecurityPSK  = "psk"
	SecurityX509 = "x509"
)

// Session is one peer's CoAP conversation with us: a plain UDP peer or one
// DTLS association. Requests to the device go over Conn (never from inside
// the handler answering the same device: go-coap sends that answer only
// when the handler returns).
type Session struct {
	// Conn is the CoAP connection the session was made with; it has Get,
	// Put, Post, Delete, Do. On a listener that hibernates idle sessions
	// (DTLSConfig.HibernateAfter) the connection is replaced when the
	// session wakes: send requests through Use instead.
	Conn *udpClient.Conn
	// Scheme is "coap" or "coaps".
	Scheme string
	// Security is SecurityNone, SecurityPSK or SecurityX509.
	Security string
	// Identity is the PSK identity or the certificate's subject CN the
	// peer authenticated with ("" for plain CoAP).
	Identity string

	until  atomic.Int64 // unix nanoseconds; 0 means the listener's default
	closer func() error

	mu    sync.Mutex   // guards Conn while a hibernating listener swaps it
	assoc *association // set for DTLS sessions (hibernate.go)
}

// ErrSessionClosed is returned by Use when the session has ended.
var ErrSessionClosed = errors.New("session closed")

// conn is Conn read under the session's lock.
func (s *Session) conn() *udpClient.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Conn
}

// Use returns the connection to send a request over and a function to
// call once the exchange is over. A hibernated DTLS session is resumed
// first (its address and keys are kept), and it is not hibernated again
// while the exchange runs.
func (s *Session) Use(ctx context.Context) (*udpClient.Conn, func(), error) {
	if s.assoc != nil {
		return s.assoc.use(ctx)
	}
	return s.conn(), func() {}, nil
}

// Hibernated reports whether the session is kept only as a compact record
// (no connection, no goroutines) until the peer or the server speaks.
func (s *Session) Hibernated() bool {
	return s.assoc != nil && s.assoc.hibernated()
}

// RemoteAddr is the peer's current address (it changes when a DTLS peer
// with a Connection ID moves behind its NAT).
func (s *Session) RemoteAddr() net.Addr {
	if s.assoc != nil {
		if a := s.assoc.peerAddr(); a != nil {
			return a
		}
	}
	if c := s.conn(); c != nil {
		return c.RemoteAddr()
	}
	if s.assoc != nil {
		return net.UDPAddrFromAddrPort(s.assoc.addr)
	}
	return nil
}

// KeepUntil keeps a DTLS session open until t even when it is idle: the
// registration's expiry. The listener closes sessions past their time.
func (s *Session) KeepUntil(t time.Time) { s.until.Store(t.UnixNano()) }

// Alive reports whether the session can still carry requests.
func (s *Session) Alive() bool {
	if s.assoc != nil {
		return !s.assoc.closing.Load()
	}
	return s.conn().Context().Err() == nil
}

// Close ends the session.
func (s *Session) Close() error {
	if s.closer != nil {
		return s.closer()
	}
	return s.conn().Close()
}

type sessionKey struct{}

// WithSession returns ctx carrying s.
func WithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session a request arrived on, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

// sessionTable maps go-coap connections (plain CoAP) or associations
// (DTLS) to our sessions. It is ours, not
// go-coap's connection map, because that map keeps closed connections under
// their first address after a Connection ID rebinding (a leak).
type sessionTable struct {
	mu sync.Mutex
	m  map[any]*Session
}

func (t *sessionTable) get(key any) *Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key]
}

func (t *sessionTable) put(key any, s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[any]*Session{}
	}
	t.m[key] = s
}

func (t *sessionTable) remove(key any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}

func (t *sessionTable) all() []*Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Session, 0, len(t.m))
	for _, s := range t.m {
		out = append(out, s)
	}
	return out
}
