package transport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/transport/v5/deadline"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
)

// DTLSConfig configures a DTLS listener.
type DTLSConfig struct {
	// Handler serves the CoAP requests of every session.
	Handler mux.Handler
	// PSK returns the key of a PSK identity (nil disables PSK suites).
	PSK func(identity []byte) ([]byte, error)
	// Certificates is the server's certificate chain for the
	// ECDHE_ECDSA suite; with none, X.509 devices cannot connect.
	Certificates []tls.Certificate
	// ClientCAs verifies device certificates. Required for X.509 devices.
	ClientCAs *x509.CertPool
	// Logger receives handshake failures and session events.
	Logger *slog.Logger
	// HandshakeTimeout bounds one handshake (default 10 s).
	HandshakeTimeout time.Duration
	// HandshakeRate is the sustained number of new associations accepted
	// per second (default 1000); a burst of 4 s worth is allowed. Each
	// pending handshake holds state until it times out (trap 10).
	HandshakeRate float64
	// IdleSession is how long a session with no KeepUntil lives
	// (default 2 minutes): long enough to register.
	IdleSession time.Duration
	// OnClose is called after a session closed.
	OnClose func(*Session)
}

const (
	// cidSize is the length of our Connection IDs: fixed, so that CID
	// records can be routed without knowing the association.
	cidSize = 8
	// maxDatagram bounds accepted datagrams; the CoAP read buffer (MTU)
	// is as large, so that no record can overflow it (trap 5).
	maxDatagram = 4096
	// inboxSize bounds datagrams queued for one association.
	inboxSize = 64
)

// DTLS is a CoAP-over-DTLS listener with its own UDP demultiplexer.
type DTLS struct {
	cfg      DTLSConfig
	pc       *net.UDPConn
	log      *slog.Logger
	base     dtls.Config
	limiter  *tokenBucket
	sessions sessionTable

	mu     sync.Mutex
	byAddr map[netip.AddrPort]*association
	byCID  map[string]*association
	closed bool

	wg   sync.WaitGroup
	stop chan struct{}

	handshakes atomic.Int64 // completed
	refused    atomic.Int64 // failed or rate-limited
}

// ListenDTLS starts CoAP over DTLS on addr.
func ListenDTLS(addr string, cfg DTLSConfig) (*DTLS, error) {
	if cfg.Handler == nil {
		return nil, errors.New("listen dtls: no handler")
	}
	if cfg.PSK == nil && len(cfg.Certificates) == 0 {
		return nil, errors.New("listen dtls: neither PSK nor certificates configured")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.HandshakeRate == 0 {
		cfg.HandshakeRate = 1000
	}
	if cfg.IdleSession == 0 {
		cfg.IdleSession = 2 * time.Minute
	}
	pc, err := listenUDP(addr)
	if err != nil {
		return nil, err
	}
	d := &DTLS{
		cfg:     cfg,
		pc:      pc,
		log:     cfg.Logger,
		limiter: newTokenBucket(cfg.HandshakeRate, 4*cfg.HandshakeRate),
		byAddr:  map[netip.AddrPort]*association{},
		byCID:   map[string]*association{},
		stop:    make(chan struct{}),
	}
	var suites []dtls.CipherSuiteID
	if cfg.PSK != nil {
		// LwM2M Core 7.1.3 mandates PSK_WITH_AES_128_CCM_8; the others are
		// what devices commonly offer.
		suites = append(suites,
			dtls.TLS_PSK_WITH_AES_128_CCM_8,
			dtls.TLS_PSK_WITH_AES_128_CCM,
			dtls.TLS_PSK_WITH_AES_128_GCM_SHA256)
	}
	if len(cfg.Certificates) > 0 {
		suites = append(suites, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	}
	d.base = dtls.Config{
		CipherSuites:         suites,
		Certificates:         cfg.Certificates,
		ClientCAs:            cfg.ClientCAs,
		ExtendedMasterSecret: dtls.RequestExtendedMasterSecret,
		MTU:                  1400,
	}
	if cfg.PSK != nil {
		d.base.PSK = cfg.PSK
		d.base.PSKIdentityHint = []byte("fota")
	}
	if len(cfg.Certificates) > 0 {
		if cfg.ClientCAs != nil {
			d.base.ClientAuth = dtls.RequireAndVerifyClientCert
		} else {
			d.base.ClientAuth = dtls.RequestClientCert
		}
	}
	d.wg.Add(2)
	go d.readLoop()
	go d.sweepLoop()
	return d, nil
}

// Addr is the listening address.
func (d *DTLS) Addr() net.Addr { return d.pc.LocalAddr() }

// Sessions returns the established sessions.
func (d *DTLS) Sessions() []*Session { return d.sessions.all() }

// Stats reports completed and refused handshakes and open associations.
func (d *DTLS) Stats() (handshakes, refused int64, associations int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.handshakes.Load(), d.refused.Load(), len(d.byAddr)
}

// Close stops the listener, closes every session and waits for the
// goroutines it started.
func (d *DTLS) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	assocs := make([]*association, 0, len(d.byAddr))
	for _, a := range d.byAddr {
		assocs = append(assocs, a)
	}
	d.mu.Unlock()
	close(d.stop)
	err := d.pc.Close()
	for _, a := range assocs {
		a.shutdown()
	}
	d.wg.Wait()
	return err
}

func (d *DTLS) readLoop() {
	defer d.wg.Done()
	buf := make([]byte, maxDatagram+1)
	for {
		n, from, err := d.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Warn("dtls read", "err", err)
			continue
		}
		if n > maxDatagram || n < recordHeaderLen {
			d.log.Debug("dtls: datagram dropped", "from", from, "size", n)
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		d.route(append([]byte(nil), buf[:n]...), from)
	}
}

// route hands one datagram to its association.
func (d *DTLS) route(b []byte, from netip.AddrPort) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	var a *association
	if cid := recordCID(b, cidSize); cid != nil {
		// RFC 9146: the CID, not the address, names the association; pion
		// moves the session to the new address once the record
		// authenticates.
		a = d.byCID[string(cid)]
	} else {
		a = d.byAddr[from]
		if isClientHello(b) {
			fixRecordVersions(b)
			if a != nil && a.established.Load() {
				// RFC 6347 4.2.8: a ClientHello with epoch 0 from the peer
				// of an established association is a restarted client;
				// start a new handshake, drop the old association.
				d.log.Info("dtls: new ClientHello from established peer, replacing session", "from", from)
				d.unlink(a)
				go a.shutdown()
				a = nil
			}
			if a == nil {
				if !d.limiter.allow(time.Now()) {
					d.mu.Unlock()
					d.refused.Add(1)
					d.log.Warn("dtls: handshake rate limit, ClientHello dropped", "from", from)
					return
				}
				a = d.newAssociation(from)
			}
		}
	}
	d.mu.Unlock()
	if a == nil {
		return // not a ClientHello and no association: stale or stray
	}
	a.deliver(packet{data: b, from: from})
}

// newAssociation is called with d.mu held.
func (d *DTLS) newAssociation(from netip.AddrPort) *association {
	a := &association{
		d:      d,
		addr:   from,
		inbox:  make(chan packet, inboxSize),
		done:   make(chan struct{}),
		rd:     deadline.New(),
		expiry: time.Now().Add(d.cfg.HandshakeTimeout + time.Second),
	}
	d.byAddr[from] = a
	d.wg.Add(1)
	go a.handshake()
	return a
}

// unlink removes a from the routing tables; called with d.mu held.
func (d *DTLS) unlink(a *association) {
	if d.byAddr[a.addr] == a {
		delete(d.byAddr, a.addr)
	}
	for _, c := range a.cids {
		if d.byCID[c] == a {
			delete(d.byCID, c)
		}
	}
}

func (d *DTLS) remove(a *association) {
	d.mu.Lock()
	d.unlink(a)
	d.mu.Unlock()
}

// sweepLoop closes sessions past their time: registration expiry, or the
// idle default for sessions that never registered.
func (d *DTLS) sweepLoop() {
	defer d.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.mu.Lock()
			var dead []*association
			for _, a := range d.byAddr {
				if a.expired(now) {
					dead = append(dead, a)
				}
			}
			d.mu.Unlock()
			for _, a := range dead {
				d.log.Debug("dtls: session expired", "peer", a.addr)
				a.shutdown()
			}
		}
	}
}

type packet struct {
	data []byte
	from netip.AddrPort
}

// association is one DTLS association. It is the net.PacketConn pion reads
// from and writes to: reads come from the demultiplexer, writes go to the
// shared socket.
type association struct {
	d    *DTLS
	addr netip.AddrPort // the address it was created for

	inbox   chan packet
	done    chan struct{}
	closing atomic.Bool
	rd      *deadline.Deadline
	mute    atomic.Bool // superseded: say nothing more to the peer

	established atomic.Bool
	cids        []string // guarded by d.mu
	expiry      time.Time
	expMu       sync.Mutex
	session     *Session
	conn        *dtls.Conn
}

func (a *association) expired(now time.Time) bool {
	a.expMu.Lock()
	s, exp := a.session, a.expiry
	a.expMu.Unlock()
	if s != nil {
		if u := s.until.Load(); u != 0 {
			return now.UnixNano() > u
		}
	}
	return now.After(exp)
}

func (a *association) deliver(p packet) {
	select {
	case a.inbox <- p:
	case <-a.done:
	default:
		// A full inbox means pion is not keeping up; UDP may drop.
	}
}

func (a *association) handshake() {
	defer a.d.wg.Done()
	d := a.d
	cfg := d.base
	cfg.ConnectionIDGenerator = func() []byte {
		cid := make([]byte, cidSize)
		_, _ = rand.Read(cid)
		d.mu.Lock()
		a.cids = append(a.cids, string(cid))
		if !d.closed {
			d.byCID[string(cid)] = a
		}
		d.mu.Unlock()
		return cid
	}
	if cfg.PSK != nil {
		psk := cfg.PSK
		cfg.PSK = func(id []byte) ([]byte, error) {
			k, err := psk(id)
			if err != nil {
				d.log.Warn("security: dtls psk identity refused", "identity", string(id), "from", a.addr, "err", err)
			}
			return k, err
		}
	}
	conn, err := dtls.Server(a, net.UDPAddrFromAddrPort(a.addr), &cfg) //nolint:staticcheck // Config is the only way to set a per-association CID generator
	if err != nil {
		d.log.Warn("dtls: server setup", "from", a.addr, "err", err)
		a.shutdown()
		return
	}
	a.expMu.Lock()
	a.conn = conn
	a.expMu.Unlock()
	if a.closing.Load() {
		_ = conn.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.HandshakeTimeout)
	err = conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		d.refused.Add(1)
		d.log.Warn("security: dtls handshake failed", "from", a.addr, "err", err)
		a.mute.Store(true)
		a.shutdown()
		return
	}
	state, _ := conn.ConnectionState()
	s := &Session{Scheme: "coaps"}
	switch {
	case len(state.PeerCertificates) > 0:
		s.Security = SecurityX509
		if cert, err := x509.ParseCertificate(state.PeerCertificates[0]); err == nil {
			s.Identity = cert.Subject.CommonName
		}
	default:
		s.Security = SecurityPSK
		s.Identity = string(state.IdentityHint)
	}
	s.closer = func() error { a.shutdown(); return nil }
	// The CoAP reader starts inside coapdtls.Client; requests wait until
	// the session is complete.
	ready := make(chan struct{})
	cc := coapdtls.Client(conn,
		options.WithMux(mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
			<-ready
			r.SetContext(WithSession(r.Context(), s))
			d.cfg.Handler.ServeCOAP(w, r)
		})),
		options.WithMTU(maxDatagram),
		options.WithMaxMessageSize(MaxMessageSize),
		options.WithBlockwise(true, blockwise.SZX1024, blockwiseTimeout),
		options.WithErrors(func(err error) { d.log.Debug("coaps", "peer", a.addr, "err", err) }),
	)
	s.Conn = cc
	close(ready)
	d.sessions.put(s)
	a.expMu.Lock()
	a.session = s
	a.expiry = time.Now().Add(d.cfg.IdleSession)
	a.expMu.Unlock()
	a.established.Store(true)
	d.handshakes.Add(1)
	cc.AddOnClose(func() {
		d.sessions.remove(cc)
		a.shutdown()
		if d.cfg.OnClose != nil {
			d.cfg.OnClose(s)
		}
	})
	d.log.Debug("dtls: session established", "from", a.addr, "security", s.Security, "identity", s.Identity)
}

// release ends the association as a packet conn: no more reads, no more
// routing. It reports whether this call did it.
func (a *association) release() bool {
	if !a.closing.CompareAndSwap(false, true) {
		return false
	}
	close(a.done)
	a.d.remove(a)
	return true
}

// shutdown closes the association once: its CoAP connection, its DTLS
// connection and its routing entries. A CAS, not sync.Once: closing the
// connections calls back into Close and the close hooks.
func (a *association) shutdown() {
	if !a.release() {
		return
	}
	a.expMu.Lock()
	s, c := a.session, a.conn
	a.expMu.Unlock()
	if s != nil {
		_ = s.Conn.Close()
	}
	if c != nil {
		_ = c.Close()
	}
}

// ReadFrom implements net.PacketConn for pion.
func (a *association) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case pk := <-a.inbox:
		return copy(p, pk.data), net.UDPAddrFromAddrPort(pk.from), nil
	case <-a.done:
		return 0, nil, net.ErrClosed
	case <-a.rd.Done():
		return 0, nil, timeoutError{}
	}
}

// WriteTo implements net.PacketConn for pion.
func (a *association) WriteTo(p []byte, addr net.Addr) (int, error) {
	if a.mute.Load() {
		return len(p), nil
	}
	select {
	case <-a.done:
		// The association was replaced or closed: its close_notify would
		// only confuse a peer that is handshaking anew.
		return len(p), nil
	default:
	}
	return a.d.pc.WriteTo(p, addr)
}

// Close implements net.PacketConn; pion calls it while its conn closes,
// so it must not close the pion conn again.
func (a *association) Close() error { a.release(); return nil }

// LocalAddr implements net.PacketConn.
func (a *association) LocalAddr() net.Addr { return a.d.pc.LocalAddr() }

// SetDeadline implements net.PacketConn.
func (a *association) SetDeadline(t time.Time) error { a.rd.Set(t); return nil }

// SetReadDeadline implements net.PacketConn.
func (a *association) SetReadDeadline(t time.Time) error { a.rd.Set(t); return nil }

// SetWriteDeadline implements net.PacketConn; writes to UDP do not block.
func (a *association) SetWriteDeadline(time.Time) error { return nil }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// tokenBucket limits new associations (trap 10).
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

func (b *tokenBucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
