package transport

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

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
	// Conn is the CoAP connection; it has Get, Put, Post, Delete, Do.
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
}

// RemoteAddr is the peer's current address (it changes when a DTLS peer
// with a Connection ID moves behind its NAT).
func (s *Session) RemoteAddr() net.Addr { return s.Conn.RemoteAddr() }

// KeepUntil keeps a DTLS session open until t even when it is idle: the
// registration's expiry. The listener closes sessions past their time.
func (s *Session) KeepUntil(t time.Time) { s.until.Store(t.UnixNano()) }

// Alive reports whether the session can still carry requests.
func (s *Session) Alive() bool { return s.Conn.Context().Err() == nil }

// Close ends the session.
func (s *Session) Close() error {
	if s.closer != nil {
		return s.closer()
	}
	return s.Conn.Close()
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

// sessionTable maps go-coap connections to our sessions. It is ours, not
// go-coap's connection map, because that map keeps closed connections under
// their first address after a Connection ID rebinding (a leak).
type sessionTable struct {
	mu sync.Mutex
	m  map[*udpClient.Conn]*Session
}

func (t *sessionTable) get(cc *udpClient.Conn) *Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[cc]
}

func (t *sessionTable) put(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[*udpClient.Conn]*Session{}
	}
	t.m[s.Conn] = s
}

func (t *sessionTable) remove(cc *udpClient.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, cc)
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

func (t *sessionTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
