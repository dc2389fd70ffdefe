package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotastack/fota/lwm2m"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Config is what a device needs to reach its LwM2M server.
type Config struct {
	// Endpoint is the endpoint client name (ep=), unique per device.
	Endpoint string
	// ServerURI is coap://host:port or coaps://host:port.
	ServerURI string
	// PSKIdentity and PSKKey select DTLS-PSK for coaps.
	PSKIdentity string
	PSKKey      []byte
	// X.509 certificate mode for coaps (used when Certificate is set).
	certificateOptions
	// Lifetime of the registration (lt=); default 300 s. The client sends
	// an Update before it runs out.
	Lifetime time.Duration
	// Queue turns on queue mode (Q): after each exchange the device stays
	// reachable for QueueWait, then closes its socket until the next Update.
	Queue bool
	// QueueWait defaults to 93 s, CoAP's MAX_TRANSMIT_WAIT (RFC 7252 4.8.2),
	// as LwM2M Core 6.5 suggests.
	QueueWait time.Duration
	// StateDir is where the device keeps state that survives a reboot
	// (bootstrap-provisioned accounts, firmware download progress). The
	// core client does not write there yet; issues 4 and 7 do.
	StateDir string
	// Device fills the Device object (3).
	Device DeviceInfo
	// HandshakeTimeout bounds the DTLS handshake (default 10 s).
	HandshakeTimeout time.Duration
	// RequestTimeout bounds each request to the server (default 20 s).
	RequestTimeout time.Duration
	// FlightInterval, AckTimeout, MaxRetransmit: DTLS and CoAP timers for
	// slow links (transport.go).
	TransmissionOptions
	// LocalIP, when set, is the address the client's sockets to its
	// server bind to (the port stays the system's choice). A simulated
	// fleet spreads its devices over loopback addresses with it: each
	// address has its own ephemeral ports, and 127.0.0.1 alone has about
	// 28,000.
	LocalIP net.IP
	// MinBackoff and MaxBackoff bound the wait between failed registration
	// attempts, doubling each time (defaults 1 s and 5 min).
	MinBackoff, MaxBackoff time.Duration
	// MaxObservations bounds the observations the device keeps (default
	// 64); beyond it an Observe is answered as a plain Read, without the
	// Observe option, which tells the server it was not established
	// (RFC 7641 4.1).
	MaxObservations int
	// OnEvent, when set, is called for each registration event, in order,
	// from the registration goroutine: it must not block for long.
	OnEvent func(Event)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// EventKind tells what happened to the registration.
type EventKind int

// The events a Client reports.
const (
	EventRegistered EventKind = iota + 1
	EventUpdated
	EventRegisterFailed
	EventUpdateFailed
	EventDeregistered
	EventSleeping // queue mode: socket closed until the next Update
	EventWakeup   // queue mode: socket reopened
)

var eventNames = map[EventKind]string{
	EventRegistered: "registered", EventUpdated: "updated", EventRegisterFailed: "register-failed",
	EventUpdateFailed: "update-failed", EventDeregistered: "deregistered", EventSleeping: "sleeping",
	EventWakeup: "wakeup",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one registration event.
type Event struct {
	Kind     EventKind
	Location string // the registration location, "/rd/xyz"
	Err      error  // for the failures
}

// Client is an LwM2M device: it holds the objects, registers with the
// server and answers its requests. Create it with New, add or replace
// objects, then Run (or Start and Stop).
type Client struct {
	cfg    Config
	target target
	log    *slog.Logger

	mu          sync.Mutex
	objects     map[uint16]Object
	conn        *udpclient.Conn // nil while disconnected or asleep
	location    string
	lifetime    time.Duration
	attrs       map[lwm2m.Path]Attributes
	observers   map[string]*observation
	inflight    map[uint64]*observation // notifications awaiting their ACK
	inflightSeq uint64
	lastSeen    time.Time     // last exchange, for the queue-mode sleep timer
	announced   string        // object links sent in the last Register/Update
	announcedLt time.Duration // lifetime sent likewise

	trigger   chan struct{} // Registration Update Trigger and wake-ups
	reconnect chan struct{} // the server account changed
	runCtx    context.Context

	// sessions keeps DTLS sessions for resumption across Stop and Start.
	sessions sessionMemory
	// rebooting makes the next stop a power cycle: no De-register.
	rebooting atomic.Bool

	startMu sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	obsWG   sync.WaitGroup
}

// New checks cfg and builds a client with the standard objects: Security
// (0) and Server (1) with one account, Device (3), Connectivity
// Monitoring (4) and Firmware Update (5).
func New(cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("client: endpoint name is empty")
	}
	t, err := parseServerURI(cfg.ServerURI)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if t.secure && cfg.Certificate == nil && (cfg.PSKIdentity == "" || len(cfg.PSKKey) == 0) {
		return nil, errors.New("client: coaps server needs --psk-id and --psk-key or a certificate")
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 300 * time.Second
	}
	if cfg.Lifetime < time.Second {
		return nil, fmt.Errorf("client: lifetime %v is below 1 s", cfg.Lifetime)
	}
	if cfg.QueueWait == 0 {
		cfg.QueueWait = 93 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 20 * time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.MaxObservations == 0 {
		cfg.MaxObservations = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{
		cfg: cfg, target: t, log: cfg.Logger.With("endpoint", cfg.Endpoint),
		objects:   map[uint16]Object{},
		attrs:     map[lwm2m.Path]Attributes{},
		observers: map[string]*observation{},
		inflight:  map[uint64]*observation{},
		lifetime:  cfg.Lifetime,
		trigger:   make(chan struct{}, 1),
		reconnect: make(chan struct{}, 1),
		runCtx:    context.Background(),
	}
	sec := NewSecurityObject()
	mode := int64(SecurityModeNoSec)
	switch {
	case t.secure && cfg.Certificate != nil:
		mode = SecurityModeCertificate
	case t.secure:
		mode = SecurityModePSK
	}
	sec.AddInstance(0, map[uint16]lwm2m.Value{
		SecServerURI: lwm2m.String(cfg.ServerURI), SecBootstrapServer: lwm2m.Boolean(false),
		SecMode: lwm2m.Integer(mode), SecPublicKeyOrID: lwm2m.Opaque([]byte(cfg.PSKIdentity)),
		SecSecretKey: lwm2m.Opaque(cfg.PSKKey), SecShortServerID: lwm2m.Integer(1),
	})
	srv := NewServerObject(1, int64(cfg.Lifetime/time.Second), c.binding())
	srv.OnExecute(SrvUpdateTrigger, func(uint16, string) error { c.TriggerUpdate(); return nil })
	srv.OnWrite(func(p lwm2m.Path, entries []lwm2m.Entry) error {
		for _, e := range entries {
			if e.Path.Resource() == SrvLifetime {
				if e.Value.Int() < 1 {
					return fmt.Errorf("lifetime %d: %w", e.Value.Int(), ErrBadRequest)
				}
				c.mu.Lock()
				c.lifetime = time.Duration(e.Value.Int()) * time.Second
				c.mu.Unlock()
				// LwM2M Core 6.2.2: a lifetime change is announced by an Update.
				c.TriggerUpdate()
			}
		}
		return nil
	})
	for _, o := range []Object{sec, srv, NewDeviceObject(cfg.Device, "U"), NewConnectivityObject(41, "127.0.0.1"), NewFirmwareObject()} {
		c.SetObject(o)
	}
	return c, nil
}

// binding is the b= parameter. Queue mode is the separate Q parameter of
// LwM2M 1.1 (registerQuery), not the 1.0 binding "UQ".
func (c *Client) binding() string { return "U" }

// SetObject adds o, replacing any object with the same ID. Issue 4 and 7
// work plugs its Security/Server and Firmware Update implementations in
// here. Call Update (TriggerUpdate) when the object list changes while
// registered.
func (c *Client) SetObject(o Object) {
	if n, ok := o.(ChangeNotifier); ok {
		n.SetChangeHook(c.Changed)
	}
	c.mu.Lock()
	c.objects[o.ID()] = o
	c.mu.Unlock()
}

// RemoveObject removes object id.
func (c *Client) RemoveObject(id uint16) {
	c.mu.Lock()
	delete(c.objects, id)
	c.mu.Unlock()
}

// Object returns object id, or nil.
func (c *Client) Object(id uint16) Object {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.objects[id]
}

// SimpleObject returns object id when it is a *SimpleObject (the built-in
// ones are), or nil.
func (c *Client) SimpleObject(id uint16) *SimpleObject {
	o, _ := c.Object(id).(*SimpleObject)
	return o
}

// objectList returns the objects sorted by ID.
func (c *Client) objectList() []Object {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Object, 0, len(c.objects))
	for _, o := range c.objects {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}

// ResourceType implements lwm2m.TypeResolver from the objects' own
// resource definitions, so decoding types values the way the device
// stores them.
func (c *Client) ResourceType(p lwm2m.Path) (lwm2m.Type, bool) {
	o := c.Object(p.Object())
	if o == nil {
		return lwm2m.TypeNone, false
	}
	if so, ok := o.(*SimpleObject); ok {
		d, ok := so.Def(p.Resource())
		return d.Type, ok
	}
	defs, err := o.Resources(p.Instance())
	if err != nil {
		return lwm2m.TypeNone, false
	}
	for _, d := range defs {
		if d.ID == p.Resource() {
			return d.Type, true
		}
	}
	return lwm2m.TypeNone, false
}

// Location is the registration location ("/rd/xyz"), "" when not registered.
func (c *Client) Location() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.location
}

// TriggerUpdate asks the registration loop to send an Update now (and to
// wake up in queue mode). It does not block.
func (c *Client) TriggerUpdate() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Start runs the client in a goroutine it owns until Stop or until ctx
// ends. It returns an error if the client is already running.
func (c *Client) Start(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.cancel != nil {
		return errors.New("client: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		_ = c.Run(ctx)
	}()
	return nil
}

// Reboot stops the client as a device that restarts does (no
// De-register: its registration is replaced by the Register that follows
// at once, and a De-register would cost a round trip) and starts it again
// under ctx. The DTLS session is kept for resumption.
func (c *Client) Reboot(ctx context.Context) error {
	c.rebooting.Store(true)
	c.Stop()
	c.rebooting.Store(false)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.Start(ctx)
}

// Stop de-registers, closes the connection and waits for every goroutine
// of the client to end.
func (c *Client) Stop() {
	c.startMu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel = nil
	c.startMu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (c *Client) emit(e Event) {
	level := slog.LevelInfo
	if e.Err != nil {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, "lwm2m "+e.Kind.String(), "location", e.Location, "err", e.Err)
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}
