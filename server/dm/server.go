package dm

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotastack/fota/server/coapmux"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// Store is what device management keeps: registrations, the security
// store, observations.
type Store interface {
	store.RegistrationStore
	store.CredentialStore
	store.ObservationStore
}

// Config configures a Server. Zero values are sensible defaults; an empty
// address turns that listener off.
type Config struct {
	Store Store // required
	// Events receives registrations, updates, notifications and Send
	// (default: a broker of the server's own).
	Events *events.Broker
	// CoAPAddr and CoAPSAddr are listen addresses ("" = off).
	CoAPAddr, CoAPSAddr string
	// Certificates and ClientCAs enable X.509 devices over DTLS.
	Certificates []tls.Certificate
	ClientCAs    *x509.CertPool
	// RequestTimeout bounds each request to a device (default 10 s).
	RequestTimeout time.Duration
	// QueueAwake is how long a queue-mode device listens after it last
	// sent us something (LwM2M Core 6.5: the client stays awake for
	// MAX_TRANSMIT_WAIT; default 20 s).
	QueueAwake time.Duration
	// QueueSize bounds the requests waiting for one sleeping device (default 16).
	QueueSize int
	// HibernateAfter hibernates DTLS sessions idle that long: an idle
	// device then costs a compact record instead of live connections and
	// goroutines (transport/hibernate.go). Zero keeps sessions live.
	HibernateAfter time.Duration
	// ResumableSessions is how many recent DTLS sessions the server keeps
	// for session resumption (abbreviated handshake after a device's
	// reboot; about 200 bytes each, 24 hours at most): 0 means 100,000, a
	// negative number none.
	ResumableSessions int
	// HandshakeTimeout bounds one DTLS handshake (default 10 s; NB-IoT
	// handshakes of three round trips at up to 10 s each need more).
	HandshakeTimeout time.Duration
	// Transmission sets the CoAP transmission parameters per device type
	// (transmission.go); the zero value uses RFC 7252's.
	Transmission TransmissionConfig
	// Cluster routes DTLS records between the nodes of a cluster by the
	// node number in Connection IDs (server/cluster sets it).
	Cluster transport.ClusterRouting
	Logger  *slog.Logger
}

// Server is the device management side of the LwM2M server: the CoAP and
// DTLS listeners, the registration interface, requests to devices (queued
// for sleeping ones), observations and Send.
type Server struct {
	// reserved tells whether a PSK identity belongs to another role (a
	// bootstrap credential) and may not be a DM identity; see
	// ReserveIdentities.
	reserved atomic.Pointer[func(identity string) (owner string, ok bool)]
	reqs     requestCounts // requests to devices by answer, for metrics
	regStats registrationLatencies

	cfg    Config
	log    *slog.Logger
	store  Store
	udp    *transport.UDP
	dtls   *transport.DTLS
	events *events.Broker
	// ownEvents: the broker is the server's own, closed with it.
	ownEvents bool
	coap      *coapmux.Router

	mu   sync.Mutex
	byID map[string]*Device
	byEP map[string]*Device
	obs  map[string]*store.Observation // by string(token)

	stop chan struct{}
	wg   sync.WaitGroup
}

// Start loads the stored state and starts the configured listeners.
func Start(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("dm: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.QueueAwake == 0 {
		cfg.QueueAwake = 20 * time.Second
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 16
	}
	own := cfg.Events == nil
	if own {
		cfg.Events = events.NewBroker()
	}
	s := &Server{
		ownEvents: own,
		cfg:       cfg,
		log:       cfg.Logger,
		store:     cfg.Store,
		events:    cfg.Events,
		byID:      map[string]*Device{},
		byEP:      map[string]*Device{},
		obs:       map[string]*store.Observation{},
		stop:      make(chan struct{}),
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.coap = coapmux.NewRouter()
	s.coap.Log = s.log
	s.coap.Handle("POST", "rd", s.handleRegister)
	s.coap.Handle("POST", "rd/*", s.handleUpdate)
	s.coap.Handle("DELETE", "rd/*", s.handleDeregister)
	s.coap.Handle("POST", "dp", s.handleSend)
	s.coap.Responses(s.handleNotification)

	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if cfg.CoAPAddr != "" {
		u, err := transport.ListenUDP(cfg.CoAPAddr, s.coap, s.log)
		if err != nil {
			return nil, err
		}
		s.udp = u
		s.log.Info("coap listening", "addr", u.Addr())
	}
	if cfg.CoAPSAddr != "" {
		d, err := transport.ListenDTLS(cfg.CoAPSAddr, transport.DTLSConfig{
			Handler:      s.coap,
			PSK:          s.pskKey,
			Certificates: cfg.Certificates,
			ClientCAs:    cfg.ClientCAs,
			Logger:       s.log,
			// Hibernation and transmission parameters: issue 8 (fleet scale).
			HibernateAfter:    cfg.HibernateAfter,
			HandshakeTimeout:  cfg.HandshakeTimeout,
			Transmission:      cfg.Transmission.lookup,
			ResumableSessions: resumable(cfg.ResumableSessions),
			Cluster:           cfg.Cluster,
		})
		if err != nil {
			return nil, err
		}
		s.dtls = d
		s.log.Info("coaps listening", "addr", d.Addr())
	}
	s.wg.Add(1)
	go s.expiryLoop()
	ok = true
	return s, nil
}

// resumable is the transport's ResumableSessions for the configured n.
func resumable(n int) int {
	switch {
	case n == 0:
		return 100_000
	case n < 0:
		return 0
	}
	return n
}

// load restores registrations and observations from the store.
func (s *Server) load() error {
	regs, err := s.store.Registrations()
	if err != nil {
		return fmt.Errorf("load registrations: %w", err)
	}
	for _, r := range regs {
		d := newDevice(r)
		s.byID[r.ID] = d
		s.byEP[r.Endpoint] = d
	}
	obs, err := s.store.Observations()
	if err != nil {
		return fmt.Errorf("load observations: %w", err)
	}
	for i := range obs {
		o := obs[i]
		if _, ok := s.byID[o.RegID]; !ok {
			continue
		}
		s.obs[string(o.Token)] = &o
	}
	s.log.Info("state restored", "registrations", len(regs), "observations", len(s.obs))
	return nil
}

// CoAPAddr is the plain CoAP listener's address, or nil.
func (s *Server) CoAPAddr() net.Addr {
	if s.udp == nil {
		return nil
	}
	return s.udp.Addr()
}

// CoAPSAddr is the DTLS listener's address, or nil.
func (s *Server) CoAPSAddr() net.Addr {
	if s.dtls == nil {
		return nil
	}
	return s.dtls.Addr()
}

// DTLS is the DTLS listener, or nil (the cluster relays records through it).
func (s *Server) DTLS() *transport.DTLS { return s.dtls }

// Events is the event broker: REGISTRATION, UPDATED, DEREGISTRATION,
// NOTIFICATION, SEND.
func (s *Server) Events() *events.Broker { return s.events }

// Router is the CoAP router of the DM listeners; other parts (the firmware
// download) add their routes to it before devices talk to them.
func (s *Server) Router() *coapmux.Router { return s.coap }

// Devices returns the registered devices sorted by endpoint.
func (s *Server) Devices() []*Device {
	s.mu.Lock()
	out := make([]*Device, 0, len(s.byEP))
	for _, d := range s.byEP {
		out = append(out, d)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Endpoint() < out[j].Endpoint() })
	return out
}

// DevicePage returns a page of registered devices in endpoint order, read
// from the store's index (store.RegistrationStore.RegistrationPage) so the
// whole fleet is neither copied nor sorted. A stored registration that is
// no longer the endpoint's live one (a Register replacing it is under way)
// is left out. The page may hold fewer than q.Limit devices while more
// follow; next is the cursor for the next page, "" after the last.
func (s *Server) DevicePage(q store.RegistrationQuery) (devs []*Device, next string, err error) {
	regs, err := s.store.RegistrationPage(q)
	if err != nil {
		return nil, "", err
	}
	if len(regs) == q.Limit {
		next = regs[len(regs)-1].Endpoint
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range regs {
		if d := s.byEP[r.Endpoint]; d != nil && d.ID() == r.ID {
			devs = append(devs, d)
		}
	}
	return devs, next, nil
}

// Count is the number of registered devices.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byEP)
}

// Device returns the registered device of an endpoint, or nil.
func (s *Server) Device(ep string) *Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byEP[ep]
}

// Close stops listeners and background work. The store is not closed: its
// owner closes it.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	if s.ownEvents {
		s.events.Close()
	}
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.dtls != nil {
		_ = s.dtls.Close()
	}
	s.wg.Wait()
	return nil
}

// expiryLoop removes registrations whose lifetime ran out (LwM2M Core
// 6.2.1: the server removes a registration not updated within its
// lifetime).
func (s *Server) expiryLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			var dead []*Device
			for _, d := range s.byID {
				if now.After(d.Registration().Expires().Add(expiryGrace)) {
					dead = append(dead, d)
				}
			}
			s.mu.Unlock()
			for _, d := range dead {
				s.log.Info("registration expired", "endpoint", d.Endpoint(), "id", d.ID())
				s.removeDevice(d, true)
			}
		}
	}
}

// expiryGrace tolerates an Update that is a little late on the wire.
const expiryGrace = 2 * time.Second

// ReserveIdentities makes PutCredential refuse (ErrReservedIdentity) a
// PSK identity for which taken reports an owner: a bootstrap server beside
// this one passes its own identities, so that one key never stands for
// both roles (the bootstrap side refuses DM identities the same way).
func (s *Server) ReserveIdentities(taken func(identity string) (owner string, ok bool)) {
	s.reserved.Store(&taken)
}

// Logger is the server's logger, for the parts attached to it.
func (s *Server) Logger() *slog.Logger { return s.log }

// Awake reports whether a device listens now: always, unless it is in queue
// mode and has been quiet longer than the queue-mode window (Config.QueueAwake).
func (s *Server) Awake(d *Device, now time.Time) bool { return d.awake(now, s.cfg.QueueAwake) }

// RequestTimeout is how long one request to a device may take.
func (s *Server) RequestTimeout() time.Duration { return s.cfg.RequestTimeout }

// QueueAwake is how long a queue-mode device listens after it last sent us something.
func (s *Server) QueueAwake() time.Duration { return s.cfg.QueueAwake }
