package server

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/fotastack/fota/server/api"
	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/cluster"
	"github.com/fotastack/fota/server/console"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/history"
	"github.com/fotastack/fota/server/metrics"
	"github.com/fotastack/fota/server/software"
	"github.com/fotastack/fota/server/store"
)

// Config configures a Server. Zero values are sensible defaults; an empty
// address turns that listener off.
type Config struct {
	Store store.Store // required; the caller opens and closes it
	// Config is device management's: the CoAP and DTLS listeners, X.509,
	// request timeouts, queue mode, hibernation, transmission parameters
	// and the logger (its Store and Events are filled by Start).
	dm.Config
	// HTTPAddr is the HTTP API's listen address ("" = off).
	HTTPAddr string
	// HTTPSAddr is the listen address of the same API, console and
	// metrics over TLS with HTTPSCert ("" = off).
	HTTPSAddr string
	HTTPSCert *tls.Certificate
	// APIToken protects the HTTP API. Empty: taken from the store, or
	// generated and stored on first start (Server.APIToken tells which).
	APIToken string
	// Campaign tunes the campaign engine.
	Campaign campaign.Config
	// Bootstrap starts the bootstrap server beside the DM server when one
	// of its listen addresses is set (LwM2M defaults :5783 and :5784):
	// Start fills its stores with Store (PSKs it generates go to the DM
	// security store), its DM URI with this server's coaps URI unless set,
	// and its logger; its routes join the HTTP API.
	Bootstrap bootstrap.Options
	// PublicHost is the host name devices reach this server by, written
	// into bootstrapped accounts and Package URIs (default: the listen
	// address, 127.0.0.1 for wildcards).
	PublicHost string
	// Cluster makes this server a node of a cluster on one PostgreSQL
	// database (NodeID empty: a single server). Doc: doc/cluster.md.
	Cluster cluster.Config
	// PProf serves net/http/pprof under /debug/pprof/, behind the API
	// token: profiles show memory contents and cost CPU, so never open.
	PProf bool
	// SigningKey signs firmware packages instead of the key kept in the
	// store: an HSM's (delta/signer), say. Nil: the stored key.
	SigningKey crypto.Signer
}

// Server is the whole LwM2M server: device management (the embedded
// dm.Server, so its operations are the Server's), the firmware repository,
// the campaign engine, the bootstrap server when configured, and the HTTP
// API over them. It only wires the parts together; each lives in its own
// package.
type Server struct {
	*dm.Server
	Firmware  *firmware.Repository
	Campaigns *campaign.Engine
	Software  *software.Manager // applications (/9), packages signed with the firmware key
	Bootstrap *bootstrap.Server // nil unless configured
	API       *api.API
	Metrics   *metrics.Metrics
	history   *history.Recorder
	// Cluster is this node's membership of a cluster, or nil.
	Cluster *cluster.Node

	log      *slog.Logger
	pprof    bool
	http     *http.Server
	httpLn   net.Listener
	https    *http.Server
	httpsLn  net.Listener
	httpsEnd chan struct{}
	apiToken string
	tokenNew bool
	httpDone chan struct{}
}

// Start starts the parts in order (device management, firmware,
// campaigns, bootstrap, the HTTP API); on error, what started is stopped.
func Start(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{log: cfg.Logger, pprof: cfg.PProf}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var err error
	if s.apiToken, s.tokenNew, err = apiToken(cfg.Store, cfg.APIToken); err != nil {
		return nil, err
	}
	if cfg.Cluster.NodeID != "" {
		// The lease first: a second process with a live node's id stops
		// here, before it binds a port or touches a device.
		if cfg.Cluster.Logger == nil {
			cfg.Cluster.Logger = cfg.Logger
		}
		if s.Cluster, err = cluster.Join(cfg.Cluster); err != nil {
			return nil, err
		}
	}
	dc := cfg.Config
	dc.Store, dc.Logger = cfg.Store, cfg.Logger
	if s.Cluster != nil {
		dc.Cluster = s.Cluster.Routing()
	}
	if s.Server, err = dm.Start(dc); err != nil {
		return nil, err
	}
	if s.Cluster != nil {
		s.Cluster.AttachDTLS(s.DTLS())
	}
	s.history = history.Start(s.Events(), cfg.Store, cfg.Logger)
	if s.Firmware, err = firmware.New(s.Server, cfg.Store); err != nil {
		return nil, err
	}
	if cfg.SigningKey != nil {
		if err := s.Firmware.UseSigner(cfg.SigningKey); err != nil {
			return nil, err
		}
	}
	cc := cfg.Campaign
	if cc.PackageHost == "" {
		cc.PackageHost = cfg.PublicHost
	}
	s.Software = software.New(s.Server, cfg.Store, s.Firmware.SigningKey(), software.Config{PackageHost: cfg.PublicHost})
	if cc.Apps == nil {
		cc.Apps = s.Software
	}
	if s.Cluster != nil {
		cc.Cluster = &campaign.Cluster{Claim: s.Cluster.Claim, Release: s.Cluster.Release}
	}
	// A device downloads only its own domain's packages.
	s.Firmware.SetDomains(cfg.Store.Owner)
	if cc.DomainOf == nil {
		cc.DomainOf = func(ep string) string {
			d, err := cfg.Store.Owner(store.OwnEndpoint, ep)
			if err != nil || d == store.DefaultDomain {
				return ""
			}
			return d
		}
	}
	if s.Campaigns, err = campaign.New(s.Server, s.Firmware, cfg.Store, cc); err != nil {
		return nil, err
	}
	if b := cfg.Bootstrap; b.CoAPAddr != "" || b.CoAPSAddr != "" {
		b.Store, b.DMStore = cfg.Store, cfg.Store
		if b.DMURI == "" {
			b.DMURI = CoAPSURI(s.CoAPSAddr(), cfg.PublicHost)
		}
		if b.Logger == nil {
			b.Logger = cfg.Logger
		}
		s.Bootstrap, err = bootstrap.Start(b)
		if err != nil {
			return nil, err
		}
		s.ReserveIdentities(s.Bootstrap.BootstrapIdentity)
	}
	ac := api.Config{Token: s.apiToken, DM: s.Server, Firmware: s.Firmware, Campaigns: s.Campaigns,
		Software: s.Software, Bootstrap: s.Bootstrap, Store: cfg.Store, Domains: cfg.Store, Logger: cfg.Logger}
	if s.Cluster != nil {
		ac.Events = s.Cluster.Stream() // every node's events, not only ours
	}
	s.API = api.New(ac)
	if s.Cluster != nil {
		if err := s.Cluster.Run(s.Events(), s.API); err != nil {
			return nil, err
		}
	}
	s.Metrics = metrics.New(metrics.Sources{DM: s.Server, Firmware: s.Firmware, Campaigns: s.Campaigns, Store: cfg.Store})
	if cfg.HTTPAddr != "" {
		if err := s.serveHTTP(cfg.HTTPAddr); err != nil {
			return nil, err
		}
	}
	if cfg.HTTPSAddr != "" {
		if err := s.serveHTTPS(cfg.HTTPSAddr, cfg.HTTPSCert); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

func (s *Server) serveHTTP(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", addr, err)
	}
	s.httpLn = ln
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	s.httpDone = make(chan struct{})
	go func() {
		defer close(s.httpDone)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	s.log.Info("http api listening", "addr", ln.Addr())
	return nil
}

// serveHTTPS serves the HTTP side over TLS (1.2 and up) with cert.
func (s *Server) serveHTTPS(addr string, cert *tls.Certificate) error {
	if cert == nil {
		return errors.New("https: no certificate")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen https %s: %w", addr, err)
	}
	s.httpsLn = ln
	s.https = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}}
	s.httpsEnd = make(chan struct{})
	go func() {
		defer close(s.httpsEnd)
		if err := s.https.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("https server", "err", err)
		}
	}()
	s.log.Info("https api listening", "addr", ln.Addr())
	return nil
}

// HTTPSAddr is the HTTPS API's address, or nil.
func (s *Server) HTTPSAddr() net.Addr {
	if s.httpsLn == nil {
		return nil
	}
	return s.httpsLn.Addr()
}

// handler is the HTTP side: the API under /api/, the console at /, and
// beside them what operators' tools poll without a token: /healthz,
// /readyz and /metrics. /metrics is open on purpose: Prometheus and load
// balancers are configured most simply without one, and its labels carry
// no endpoint names, identities or keys, only counts by state.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	if s.Cluster != nil {
		mux.Handle("/api/", s.Cluster.Forward(s.API, func(ep string) bool {
			d := s.Device(ep)
			return d != nil && d.Session() != nil
		}))
		mux.Handle("GET /api/cluster", s.tokenOnly(http.HandlerFunc(s.clusterStatus)))
	} else {
		mux.Handle("/api/", s.API)
	}
	mux.Handle("/", console.Handler(nil))
	mux.Handle("GET /metrics", s.Metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.pprof {
		mux.Handle("/debug/pprof/", s.tokenOnly(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", s.tokenOnly(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", s.tokenOnly(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", s.tokenOnly(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", s.tokenOnly(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// clusterStatus answers GET /api/cluster: the nodes on the database (live
// or not, by their leases), this node's id and its record relay's counts.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.Cluster.Nodes()
	if err != nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"title": "Service Unavailable", "status": 503, "detail": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"node": s.Cluster.ID(), "nodes": nodes, "relay": s.Cluster.RelayStats()})
}

// readyz answers 200 when the store answers a read and the listeners are
// bound: what a load balancer needs before it sends traffic here.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.Metrics.ProbeStore(); err != nil && !errors.Is(err, store.ErrNotFound) {
		http.Error(w, "store unreachable", http.StatusServiceUnavailable)
		s.log.Warn("readyz: store", "err", err)
		return
	}
	if s.httpLn == nil && s.httpsLn == nil || (s.Server.CoAPAddr() == nil && s.CoAPSAddr() == nil) {
		http.Error(w, "listeners not bound", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// tokenOnly passes requests that carry the API token as a bearer header
// (never a query parameter: profiles are fetched by tools that log URLs).
func (s *Server) tokenOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.apiToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fota"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

const settingAPIToken = "api-token"

// apiToken is the configured token, else the stored one, else a new one
// stored for the next start (generated reports that: the caller shows it
// once).
func apiToken(st store.SettingStore, configured string) (token string, generated bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	t, err := st.Setting(settingAPIToken)
	if err == nil && len(t) > 0 {
		return string(t), false, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", false, fmt.Errorf("read api token: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	token = hex.EncodeToString(b)
	if err := st.PutSetting(settingAPIToken, []byte(token)); err != nil {
		return "", false, fmt.Errorf("store api token: %w", err)
	}
	return token, true, nil
}

// APIToken returns the bearer token of the HTTP API and whether it was
// generated by this start (then the caller prints it once).
func (s *Server) APIToken() (token string, generated bool) { return s.apiToken, s.tokenNew }

// HTTPAddr is the HTTP API's address, or nil.
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Close stops the parts in the reverse order of Start. The store is not
// closed: its owner closes it. Calling it twice is harmless.
func (s *Server) Close() error {
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
		<-s.httpDone
		s.http = nil
	}
	if s.https != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.https.Shutdown(ctx)
		cancel()
		<-s.httpsEnd
		s.https = nil
	}
	if s.Bootstrap != nil {
		_ = s.Bootstrap.Close()
	}
	if s.Metrics != nil {
		s.Metrics.Close()
	}
	if s.Campaigns != nil {
		s.Campaigns.Close()
	}
	if s.Software != nil {
		s.Software.Close()
	}
	var err error
	if s.Server != nil {
		err = s.Server.Close()
	}
	if s.history != nil {
		s.history.Close() // after dm: its last events (de-registrations) are written
	}
	if s.Cluster != nil {
		s.Cluster.Close() // last: the lease ends when nothing of the node runs
		s.Cluster = nil
	}
	return err
}

// CoAPSURI is the coaps URI devices use to reach a listener at addr: a
// wildcard listen address is replaced by publicHost (default 127.0.0.1).
func CoAPSURI(addr net.Addr, publicHost string) string {
	return dm.ListenerURI("coaps", addr, publicHost)
}
