package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// Config configures a Server. Zero values are sensible defaults; an empty
// address turns that listener off.
type Config struct {
	Store store.Store // required
	// CoAPAddr, CoAPSAddr and HTTPAddr are listen addresses ("" = off).
	CoAPAddr, CoAPSAddr, HTTPAddr string
	// APIToken protects the HTTP API. Empty: taken from the store, or
	// generated and stored on first start (Server.APIToken tells which).
	APIToken string
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
	// HandshakeTimeout bounds one DTLS handshake (default 10 s; NB-IoT
	// handshakes of three round trips at up to 10 s each need more).
	HandshakeTimeout time.Duration
	// Transmission sets the CoAP transmission parameters per device type
	// (transmission.go); the zero value uses RFC 7252's.
	Transmission TransmissionConfig
	Logger       *slog.Logger
}

// Server is the LwM2M server: registration interface, device management,
// observations, the HTTP API.
type Server struct {
	// reserved tells whether a PSK identity belongs to another role (a
	// bootstrap credential) and may not be a DM identity; see
	// ReserveIdentities.
	reserved atomic.Pointer[func(identity string) (owner string, ok bool)]

	cfg    Config
	log    *slog.Logger
	store  store.Store
	udp    *transport.UDP
	dtls   *transport.DTLS
	http   *http.Server
	httpLn net.Listener
	mux    *http.ServeMux
	events *Broker
	coap   *Router

	mu       sync.Mutex
	byID     map[string]*Device
	byEP     map[string]*Device
	obs      map[string]*store.Observation // by string(token)
	apiToken string
	tokenNew bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// Start loads the stored state and starts the configured listeners.
func Start(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: no store")
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
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		store:  cfg.Store,
		events: NewBroker(),
		byID:   map[string]*Device{},
		byEP:   map[string]*Device{},
		obs:    map[string]*store.Observation{},
		stop:   make(chan struct{}),
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.initToken(); err != nil {
		return nil, err
	}
	s.coap = NewRouter()
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
			HibernateAfter:   cfg.HibernateAfter,
			HandshakeTimeout: cfg.HandshakeTimeout,
			Transmission:     cfg.Transmission.lookup,
		})
		if err != nil {
			return nil, err
		}
		s.dtls = d
		s.log.Info("coaps listening", "addr", d.Addr())
	}
	s.mux = http.NewServeMux()
	s.routes()
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("listen http %s: %w", cfg.HTTPAddr, err)
		}
		s.httpLn = ln
		s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http server", "err", err)
			}
		}()
		s.log.Info("http api listening", "addr", ln.Addr())
	}
	s.wg.Add(1)
	go s.expiryLoop()
	ok = true
	return s, nil
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

const settingAPIToken = "api-token"

func (s *Server) initToken() error {
	if s.cfg.APIToken != "" {
		s.apiToken = s.cfg.APIToken
		return nil
	}
	t, err := s.store.Setting(settingAPIToken)
	if err == nil && len(t) > 0 {
		s.apiToken = string(t)
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read api token: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	s.apiToken = hex.EncodeToString(b)
	s.tokenNew = true
	if err := s.store.PutSetting(settingAPIToken, []byte(s.apiToken)); err != nil {
		return fmt.Errorf("store api token: %w", err)
	}
	return nil
}

// APIToken returns the bearer token of the HTTP API and whether it was
// generated by this start (then the caller prints it once).
func (s *Server) APIToken() (token string, generated bool) { return s.apiToken, s.tokenNew }

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

// HTTPAddr is the HTTP API's address, or nil.
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Store is the server's store, for the other server concerns (bootstrap,
// firmware) that keep their state beside it.
func (s *Server) Store() store.Store { return s.store }

// Events is the event broker: REGISTRATION, UPDATED, DEREGISTRATION,
// NOTIFICATION, SEND.
func (s *Server) Events() *Broker { return s.events }

// Router is the CoAP router; other interfaces add their routes to it
// before devices talk to them.
func (s *Server) Router() *Router { return s.coap }

// Mux is the HTTP mux of the API; other concerns add routes under /api/.
// Routes added here are served behind the bearer-token check.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// Close stops listeners and background work. The store is not closed: its
// owner closes it.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	s.events.Close()
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

// ReserveIdentities makes PUT /api/security/clients refuse (409) a PSK
// identity for which taken reports an owner: a bootstrap server beside
// this one passes its own identities, so that one key never stands for
// both roles (the bootstrap side refuses DM identities the same way).
func (s *Server) ReserveIdentities(taken func(identity string) (owner string, ok bool)) {
	s.reserved.Store(&taken)
}
