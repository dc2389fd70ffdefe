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
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
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
	// MaxPendingHandshakes bounds the handshakes in progress at once
	// (default 1024). Past it a ClientHello is dropped and the device
	// retries later: an overloaded server that admits every retry spends
	// its time on handshakes that time out before they finish, and the
	// retries of those make more (a congestion collapse seen at 87,000
	// devices on two cores).
	MaxPendingHandshakes int
	// IdleSession is how long a session with no KeepUntil lives
	// (default 2 minutes): long enough to register.
	IdleSession time.Duration
	// OnClose is called after a session closed.
	OnClose func(*Session)
	// HibernateAfter, when set, hibernates sessions idle that long: the
	// DTLS state is serialized, the pion and go-coap connections and their
	// goroutines end, and the next datagram (or a request the server
	// sends through Session.Use) resumes the session without a handshake
	// (hibernate.go). Zero keeps every session live.
	HibernateAfter time.Duration
	// Transmission, when set, gives the CoAP transmission parameters for a
	// peer by its identity (false: go-coap's defaults).
	Transmission func(identity string) (Transmission, bool)
	// Cluster routes records between the nodes of a cluster (relay.go);
	// the zero value: a single server.
	Cluster ClusterRouting
	// ResumableSessions, when above 0, keeps that many recent sessions
	// (about 200 bytes each, for ResumableFor, default 24 h) so that a
	// device that reboots may resume its session with an abbreviated
	// handshake (RFC 5246 7.3, session ID): one round trip and the key
	// exchange fewer. The cookie exchange stays.
	ResumableSessions int
	ResumableFor      time.Duration
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
	limiter  *tokenBucket
	sessions sessionTable

	// opts configure every pion conn, handshaking or resumed: suites,
	// certificates, PSK, MTU. serverOpts are the handshake-only ones
	// (client authentication), which pion's Option type for a resume
	// cannot carry and a resumed conn never uses: it starts at the last
	// flight.
	opts       []dtls.Option
	serverOpts []dtls.ServerOption
	// hsOpts are opts and serverOpts as one list, built once: every
	// handshake copies it and adds its own two.
	hsOpts []dtls.ServerOption
	// periodic runs the go-coap connections' expiration checks (runtime.go).
	periodic *periodicRunner
	// resumable holds sessions for abbreviated handshakes (nil: none).
	resumable *resumptionStore

	mu     sync.Mutex
	byAddr map[netip.AddrPort]*association
	byCID  map[string]*association
	closed bool

	wg   sync.WaitGroup
	stop chan struct{}

	pending    atomic.Int64 // handshakes in progress
	handshakes atomic.Int64 // completed
	refused    atomic.Int64 // failed or rate-limited
	hsLatency  latency      // of completed handshakes
	hibernated atomic.Int64 // hibernations
	asleep     atomic.Int64 // associations hibernated now
	resumed    atomic.Int64 // resumptions

	rt retransmissions // CoAP retransmissions sent and received (retransmit.go)
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
	if cfg.MaxPendingHandshakes == 0 {
		cfg.MaxPendingHandshakes = 1024
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
	d.opts = []dtls.Option{
		dtls.WithCipherSuites(suites...),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithMTU(1400),
		dtls.WithLoggerFactory(newSharedLoggerFactory()),
	}
	if len(cfg.Certificates) > 0 {
		d.opts = append(d.opts, dtls.WithCertificates(cfg.Certificates...))
	}
	if cfg.PSK != nil {
		d.opts = append(d.opts, dtls.WithPSK(cfg.PSK), dtls.WithPSKIdentityHint([]byte("fota")))
	}
	if cfg.ClientCAs != nil {
		d.serverOpts = append(d.serverOpts, dtls.WithClientCAs(cfg.ClientCAs))
	}
	if len(cfg.Certificates) > 0 {
		if cfg.ClientCAs != nil {
			d.serverOpts = append(d.serverOpts, dtls.WithClientAuth(dtls.RequireAndVerifyClientCert))
		} else {
			d.serverOpts = append(d.serverOpts, dtls.WithClientAuth(dtls.RequestClientCert))
		}
	}
	if cfg.ResumableSessions > 0 {
		ttl := cfg.ResumableFor
		if ttl <= 0 {
			ttl = 24 * time.Hour
		}
		d.resumable = newResumptionStore(cfg.ResumableSessions, ttl)
		d.serverOpts = append(d.serverOpts, dtls.WithSessionStore(d.resumable))
	}
	d.hsOpts = make([]dtls.ServerOption, 0, len(d.opts)+len(d.serverOpts))
	for _, o := range d.opts {
		d.hsOpts = append(d.hsOpts, o)
	}
	d.hsOpts = append(d.hsOpts, d.serverOpts...)
	d.periodic = newPeriodicRunner()
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

// ResumptionStats reports how many sessions are kept for resumption and
// how many ClientHellos offered one of them (abbreviated handshakes).
func (d *DTLS) ResumptionStats() (kept int, resumed int64) {
	if d.resumable == nil {
		return 0, 0
	}
	return d.resumable.stats()
}

// HibernationStats reports how many times sessions hibernated and resumed,
// and how many are hibernated now.
func (d *DTLS) HibernationStats() (hibernations, resumptions int64, asleep int) {
	return d.hibernated.Load(), d.resumed.Load(), int(d.asleep.Load())
}

// Retransmissions reports the CoAP retransmissions on DTLS sessions.
func (d *DTLS) Retransmissions() RetransmissionStats { return d.rt.stats() }

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
	d.periodic.close()
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
		if node, ok := d.foreignNode(cid); ok && a == nil {
			d.mu.Unlock()
			d.cfg.Cluster.Foreign(node, b, from)
			return
		}
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
				// Out of the session table now, not when the goroutine
				// runs: the new handshake may finish first, and then two
				// sessions would name the same peer.
				d.sessions.remove(a)
				go a.shutdown()
				a = nil
			}
			if a == nil {
				if d.pending.Load() >= int64(d.cfg.MaxPendingHandshakes) {
					d.mu.Unlock()
					d.refused.Add(1)
					d.log.Debug("dtls: too many handshakes in progress, ClientHello dropped", "from", from)
					return
				}
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
		expiry: time.Now().Add(d.cfg.HandshakeTimeout + time.Second),
	}
	a.touch()
	inc := newIncarnation(a)
	a.cur = inc
	d.byAddr[from] = a
	d.pending.Add(1)
	d.wg.Add(1)
	go a.handshake(inc)
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
	// Sweep at least twice per hibernation period, so that sessions
	// hibernate close to their time: the fewer live at once, the less a
	// burst of registrations leaves the heap fragmented.
	every := time.Second
	if h := d.cfg.HibernateAfter; h > 0 && h/2 < every {
		every = max(h/2, 50*time.Millisecond)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.mu.Lock()
			all := make([]*association, 0, len(d.byAddr))
			for _, a := range d.byAddr {
				all = append(all, a)
			}
			d.mu.Unlock()
			for _, a := range all {
				if a.expired(now) {
					d.log.Debug("dtls: session expired", "peer", a.addr)
					a.shutdown()
					continue
				}
				if d.cfg.HibernateAfter > 0 {
					a.hibernateIfIdle(now, d.cfg.HibernateAfter)
				}
			}
		}
	}
}

type packet struct {
	data []byte
	from netip.AddrPort
}

// association is one DTLS association: what routes to it (address, CIDs),
// its session, and either a live incarnation (a pion conn and a go-coap
// conn over a pipe) or, while hibernated, the serialized DTLS state
// (hibernate.go).
type association struct {
	d    *DTLS
	addr netip.AddrPort // the address it was created for

	closing     atomic.Bool
	mute        atomic.Bool // superseded: say nothing more to the peer
	established atomic.Bool
	pendingDone atomic.Bool  // counted out of DTLS.pending
	pskRefused  atomic.Bool  // the store refused the peer's PSK identity
	lastActive  atomic.Int64 // unix nanoseconds of the last datagram in or out
	busy        atomic.Int32 // requests being served or sent
	handlers    atomic.Int32 // handlers running now
	handlerEnd  atomic.Int64 // unix nanoseconds when the last handler returned
	cids        []string     // guarded by d.mu

	mu      sync.Mutex // guards the fields below
	cur     *incarnation
	session *Session
	expiry  time.Time
	state   []byte   // marshaled dtls.State while hibernated
	peer    net.Addr // the peer's address while hibernated
}

// incarnation is one pion conn of an association and the net.PacketConn
// it reads from and writes to: reads come from the demultiplexer, writes
// go to the shared socket. Hibernation retires it; a resume makes a new one.
type incarnation struct {
	a       *association
	inbox   chan packet
	done    chan struct{}
	closing atomic.Bool
	rd      *deadline.Deadline
	retired atomic.Bool // closed on purpose by hibernation
	conn    *dtls.Conn
	cc      *udpClient.Conn

	// from and fromAddr are the source of the last datagram read, as
	// netip and as the net.Addr handed to pion (one allocation per peer
	// address, not per datagram); only pion's reader uses them.
	from     netip.AddrPort
	fromAddr *net.UDPAddr
}

func newIncarnation(a *association) *incarnation {
	return &incarnation{a: a, inbox: make(chan packet, inboxSize), done: make(chan struct{}), rd: deadline.New()}
}

func (a *association) touch() { a.lastActive.Store(time.Now().UnixNano()) }

func (a *association) expired(now time.Time) bool {
	a.mu.Lock()
	s, exp := a.session, a.expiry
	a.mu.Unlock()
	if s != nil {
		if u := s.until.Load(); u != 0 {
			return now.UnixNano() > u
		}
	}
	return now.After(exp)
}

// deliver hands a datagram to the live incarnation, resuming a hibernated
// association first.
func (a *association) deliver(p packet) {
	a.touch()
	a.mu.Lock()
	inc := a.cur
	if inc == nil && a.state != nil && !a.closing.Load() {
		var err error
		if inc, err = a.resumeLocked(); err != nil {
			a.mu.Unlock()
			a.d.log.Warn("dtls: resume failed, session dropped", "peer", a.addr, "err", err)
			a.shutdown()
			return
		}
	}
	a.mu.Unlock()
	if inc == nil {
		return
	}
	select {
	case inc.inbox <- p:
	case <-inc.done:
	default:
		// A full inbox means pion is not keeping up; UDP may drop.
	}
}

func (a *association) handshake(inc *incarnation) {
	defer a.d.wg.Done()
	d := a.d
	opts := make([]dtls.ServerOption, len(d.hsOpts), len(d.hsOpts)+2)
	copy(opts, d.hsOpts)
	// The CID generator is per association: the CIDs it hands out route
	// to this association.
	opts = append(opts, dtls.WithConnectionIDGenerator(func() []byte {
		cid := make([]byte, cidSize)
		_, _ = rand.Read(cid)
		if no := d.cfg.Cluster.NodeNo; no != 0 {
			putCIDNode(cid, no)
		}
		d.mu.Lock()
		a.cids = append(a.cids, string(cid))
		if !d.closed {
			d.byCID[string(cid)] = a
		}
		d.mu.Unlock()
		return cid
	}))
	if psk := d.cfg.PSK; psk != nil {
		// Replaces the plain callback of d.opts (the last option wins) with
		// one that logs a refused identity with the peer's address.
		opts = append(opts, dtls.WithPSK(func(id []byte) ([]byte, error) {
			k, err := psk(id)
			if err != nil {
				d.log.Warn("security: dtls psk identity refused", "identity", string(id), "from", a.addr, "err", err)
				a.pskRefused.Store(true) // its alert says so (WriteTo)
			}
			return k, err
		}))
	}
	conn, err := dtls.ServerWithOptions(inc, net.UDPAddrFromAddrPort(a.addr), opts...)
	if err != nil {
		d.log.Warn("dtls: server setup", "from", a.addr, "err", err)
		a.shutdown()
		return
	}
	a.mu.Lock()
	inc.conn = conn
	a.mu.Unlock()
	if a.closing.Load() {
		_ = conn.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.HandshakeTimeout)
	hsStart := time.Now()
	err = conn.HandshakeContext(ctx)
	hsTime := time.Since(hsStart)
	cancel()
	if err != nil {
		d.refused.Add(1)
		d.log.Warn("security: dtls handshake failed", "from", a.addr, "err", err)
		a.mute.Store(true)
		a.shutdown()
		return
	}
	state, _ := conn.ConnectionState()
	s := &Session{Scheme: "coaps", assoc: a}
	if d.cfg.HibernateAfter == 0 {
		s.assoc = nil // the plain layout: Conn never changes
	}
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
	s.closer = func() error { a.closeGracefully(); return nil }
	a.mu.Lock()
	a.session = s
	a.attachLocked(inc, conn)
	a.expiry = time.Now().Add(d.cfg.IdleSession)
	a.mu.Unlock()
	a.touch()
	d.sessions.put(a, s)
	a.endPending()
	a.established.Store(true)
	d.handshakes.Add(1)
	d.hsLatency.observe(hsTime)
	if a.closing.Load() {
		// Shut down while we were setting up: the close hook may have run
		// before the session was known.
		a.shutdown()
		return
	}
	d.log.Debug("dtls: session established", "from", a.addr, "security", s.Security, "identity", s.Identity)
}

// attachLocked wraps conn in a go-coap connection serving the listener's
// handler and makes inc the live incarnation. Called with a.mu held.
func (a *association) attachLocked(inc *incarnation, conn *dtls.Conn) {
	d := a.d
	s := a.session
	inc.conn = conn
	// The CoAP reader starts inside coapdtls.Client; requests wait until
	// the incarnation is complete.
	ready := make(chan struct{})
	opts := []udp.Option{
		options.WithMux(mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
			<-ready
			a.busy.Add(1)
			a.handlers.Add(1)
			defer func() {
				a.touch()
				a.handlerEnd.Store(time.Now().UnixNano())
				a.handlers.Add(-1)
				a.busy.Add(-1)
			}()
			r.SetContext(WithSession(r.Context(), s))
			d.cfg.Handler.ServeCOAP(w, r)
		})),
		options.WithMTU(maxDatagram),
		options.WithMaxMessageSize(MaxMessageSize),
		options.WithBlockwise(true, blockwise.SZX1024, blockwiseTimeout),
		options.WithErrors(func(err error) { d.log.Debug("coaps", "peer", a.addr, "err", err) }),
		options.WithPeriodicRunner(d.periodic.add),
		continueOption(&d.rt),
	}
	if t := d.cfg.Transmission; t != nil {
		if p, ok := t(s.Identity); ok {
			opts = append(opts, p.option(), options.WithBlockwise(true, p.szx(), blockwiseTimeout))
		}
	}
	cc := dtlsCoAPClient(conn, &d.rt, opts...)
	inc.cc = cc
	s.mu.Lock()
	s.Conn = cc
	s.mu.Unlock()
	a.cur = inc
	close(ready)
	cc.AddOnClose(func() {
		if inc.retired.Load() {
			return // hibernation, not the end of the session
		}
		a.shutdown()
	})
}

// endPending takes a out of the handshakes in progress, once: when its
// handshake completes, or when it ends before that.
func (a *association) endPending() {
	if a.pendingDone.CompareAndSwap(false, true) {
		a.d.pending.Add(-1)
	}
}

// release ends the association's routing; it reports whether this call
// did it.
func (a *association) release() bool {
	if !a.closing.CompareAndSwap(false, true) {
		return false
	}
	a.d.remove(a)
	return true
}

// shutdown closes the association once: its CoAP and DTLS connections (or
// its hibernated record) and its routing entries. A CAS, not sync.Once:
// closing the connections calls back into Close and the close hooks.
func (a *association) shutdown() {
	if !a.release() {
		return
	}
	a.endPending()
	a.mu.Lock()
	inc, s := a.cur, a.session
	if inc == nil && a.state != nil {
		a.d.asleep.Add(-1)
	}
	a.cur, a.state = nil, nil
	a.mu.Unlock()
	if inc != nil {
		inc.stop()
	}
	if s != nil {
		a.d.sessions.remove(a)
		if a.d.cfg.OnClose != nil {
			a.d.cfg.OnClose(s)
		}
	}
}

// closeGracefully is Session.Close: it lets a handler of the session that
// is still running, or has just returned, get its response out first
// (go-coap writes it after the handler returns), since server code may
// close a session from a goroutine a handler started. The wait is
// bounded, for a Close called from inside a handler.
func (a *association) closeGracefully() {
	const grace = 20 * time.Millisecond
	deadline := time.Now().Add(200 * time.Millisecond)
	for a.handlers.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if since := time.Duration(time.Now().UnixNano() - a.handlerEnd.Load()); since < grace {
		time.Sleep(grace - since)
	}
	a.shutdown()
}

// stop ends an incarnation: its pipe first, so that nothing it sends while
// closing (close_notify) reaches the peer, then its connections.
func (inc *incarnation) stop() {
	inc.release()
	if inc.cc != nil {
		_ = inc.cc.Close()
	}
	if inc.conn != nil {
		_ = inc.conn.Close()
	}
}

// release closes the pipe: no more reads, writes are dropped.
func (inc *incarnation) release() {
	if inc.closing.CompareAndSwap(false, true) {
		close(inc.done)
	}
}

// ReadFrom implements net.PacketConn for pion.
func (inc *incarnation) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case pk := <-inc.inbox:
		if inc.fromAddr == nil || pk.from != inc.from {
			inc.from, inc.fromAddr = pk.from, net.UDPAddrFromAddrPort(pk.from)
		}
		return copy(p, pk.data), inc.fromAddr, nil
	case <-inc.done:
		return 0, nil, net.ErrClosed
	case <-inc.rd.Done():
		return 0, nil, timeoutError{}
	}
}

// WriteTo implements net.PacketConn for pion.
func (inc *incarnation) WriteTo(p []byte, addr net.Addr) (int, error) {
	if inc.a.mute.Load() {
		return len(p), nil
	}
	select {
	case <-inc.done:
		// Closed, replaced or hibernated: its close_notify would only
		// confuse a peer that is handshaking anew, and after hibernation
		// a record sent now would reuse a sequence number the resumed
		// session sends again (a nonce reuse).
		return len(p), nil
	default:
	}
	inc.a.touch()
	if inc.a.pskRefused.Load() {
		p = unknownIdentityAlert(p)
	}
	if node, to, ok := relayTarget(addr); ok && inc.a.d.cfg.Cluster.Relay != nil {
		// A peer that reaches us through another node's front: the
		// record goes back out from there (relay.go).
		if err := inc.a.d.cfg.Cluster.Relay(node, to, p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return inc.a.d.pc.WriteTo(p, addr)
}

// Close implements net.PacketConn; pion calls it while its conn closes,
// so it must not close the pion conn again.
func (inc *incarnation) Close() error {
	if !inc.retired.Load() {
		go inc.a.shutdown()
	}
	inc.release()
	return nil
}

// LocalAddr implements net.PacketConn.
func (inc *incarnation) LocalAddr() net.Addr { return inc.a.d.pc.LocalAddr() }

// SetDeadline implements net.PacketConn.
func (inc *incarnation) SetDeadline(t time.Time) error { inc.rd.Set(t); return nil }

// SetReadDeadline implements net.PacketConn.
func (inc *incarnation) SetReadDeadline(t time.Time) error { inc.rd.Set(t); return nil }

// SetWriteDeadline implements net.PacketConn; writes to UDP do not block.
func (inc *incarnation) SetWriteDeadline(time.Time) error { return nil }

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
