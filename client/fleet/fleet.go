package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/linksim"
)

// Config describes a fleet.
type Config struct {
	// Devices is the number of devices; First the index of the first
	// (endpoints ep-First ... ep-(First+Devices-1)).
	Devices, First int
	// ServerURI is the LwM2M server, coaps://host:port (or coap://).
	ServerURI string
	// PSKPrefix derives each device's PSK identity and key (Credentials).
	PSKPrefix string
	// Rate is how many devices start per second (0: all at once).
	Rate float64
	// Profile is the simulated link of every device; the zero value or
	// "lan" puts no relay in between.
	Profile linksim.Profile
	// Seed makes the link impairments reproducible (device i uses Seed+i).
	Seed uint64
	// Lifetime is the registration lifetime (default 300 s).
	Lifetime time.Duration
	// Queue turns on LwM2M queue mode.
	Queue bool
	// Setup, when set, is called for each client before it starts (to add
	// objects such as a firmware updater).
	Setup func(i int, c *client.Client) error
	// SetupVia is Setup for objects that open connections of their own
	// (a firmware pull): via maps the host:port they would dial to the
	// address that reaches it over a second simulated link of the device,
	// with the same profile (the identity with no simulated link).
	SetupVia func(i int, c *client.Client, via func(hostport string) string) error
	// Device is what each device's Device object (3) reports; the zero
	// value is a "simulator" running 1.0.0. Serial is the endpoint.
	Device client.DeviceInfo
	// Logger for fleet events; the devices' own logs are discarded.
	Logger *slog.Logger
	// SpreadLoopback, with a server on a loopback address, binds each
	// device's sockets (and its relay's) to one of 127.1.0.1, 127.1.0.2,
	// ... instead of 127.0.0.1, a few thousand devices per address:
	// ephemeral ports are per address, and one address has only about
	// 28,000 (net.ipv4.ip_local_port_range), fewer than a large fleet
	// needs, and tests on 127.0.0.1 would find none left.
	SpreadLoopback bool
	// PerAddress, with SpreadLoopback, is how many devices share one
	// loopback address (default 8000). A balancer that hashes the source
	// address (nginx `hash $remote_addr`) spreads devices over nodes only
	// when they come from many addresses, as a real fleet's NATs do.
	PerAddress int
}

// devicesPerAddress is how many devices share one loopback address under
// SpreadLoopback: a third of the ~28,000 ephemeral ports of the default
// range, with three sockets per device on a simulated link.
const devicesPerAddress = 8000

// loopbackFor is the local address of device i under SpreadLoopback.
func loopbackFor(i, per int) net.IP {
	if per <= 0 {
		per = devicesPerAddress
	}
	k := i / per
	return net.IPv4(127, 1, byte(k>>8), byte(k&0xff)+1)
}

// Stats is what the fleet observed so far.
type Stats struct {
	Started       int           // devices started
	Registered    int           // devices registered at least once
	Registrations int           // registration events (more than Registered means re-registrations)
	Failures      int           // failed registration attempts
	FirstStart    time.Time     // when the first device started
	LastRegister  time.Time     // when the last first-time registration happened
	MeanRegister  time.Duration // mean time from a device's start to its first registration
	Rebinds       int           // NAT rebindings on the simulated links
}

// Fleet is a running fleet.
type Fleet struct {
	cfg    Config
	spread bool // SpreadLoopback, with a server on loopback

	mu      sync.Mutex
	devices []*device
	stats   Stats
	sumReg  time.Duration

	cancel context.CancelFunc
	done   chan struct{}
}

type device struct {
	c          *client.Client
	relay      *relay
	mu         sync.Mutex
	relay2     *relay // the second flow (SetupVia), made on first use
	closed     bool
	started    time.Time
	registered atomic.Bool
}

// Start starts the fleet; devices come up at cfg.Rate in the background.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Devices <= 0 {
		return nil, errors.New("fleet: no devices")
	}
	u, err := url.Parse(cfg.ServerURI)
	if err != nil || (u.Scheme != "coap" && u.Scheme != "coaps") || u.Host == "" {
		return nil, fmt.Errorf("fleet: server URI %q: want coap://host:port or coaps://host:port", cfg.ServerURI)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 300 * time.Second
	}
	var server net.Addr
	if cfg.Profile.Name != "" && cfg.Profile != (linksim.Profile{Name: cfg.Profile.Name}) {
		if server, err = net.ResolveUDPAddr("udp", u.Host); err != nil {
			return nil, fmt.Errorf("fleet: resolve %s: %w", u.Host, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &Fleet{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	if cfg.SpreadLoopback {
		host := u.Hostname()
		ip := net.ParseIP(host)
		f.spread = host == "localhost" || (ip != nil && ip.IsLoopback())
	}
	go f.run(ctx, u.Scheme, server)
	return f, nil
}

func (f *Fleet) run(ctx context.Context, scheme string, server net.Addr) {
	defer close(f.done)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := time.Now()
	f.mu.Lock()
	f.stats.FirstStart = start
	f.mu.Unlock()
	for k := 0; k < f.cfg.Devices; k++ {
		if f.cfg.Rate > 0 {
			at := start.Add(time.Duration(float64(k) / f.cfg.Rate * float64(time.Second)))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(at)):
			}
		} else if ctx.Err() != nil {
			return
		}
		i := f.cfg.First + k
		if err := f.startDevice(ctx, i, scheme, server, quiet); err != nil {
			f.cfg.Logger.Warn("fleet: device not started", "device", i, "err", err)
		}
	}
}

func (f *Fleet) startDevice(ctx context.Context, i int, scheme string, server net.Addr, quiet *slog.Logger) error {
	ep, id, key := Credentials(f.cfg.PSKPrefix, i)
	d := &device{started: time.Now()}
	uri := f.cfg.ServerURI
	local := net.IPv4(127, 0, 0, 1)
	if f.spread {
		local = loopbackFor(i, f.cfg.PerAddress)
	}
	if server != nil {
		r, err := newRelay(local, server, f.cfg.Profile, f.cfg.Seed+uint64(i))
		if err != nil {
			return err
		}
		d.relay = r
		uri = scheme + "://" + r.Addr().String()
	}
	cfg := client.Config{
		Endpoint: ep, ServerURI: uri, Lifetime: f.cfg.Lifetime, Queue: f.cfg.Queue,
		Device: f.cfg.Device,
		Logger: quiet,
		OnEvent: func(e client.Event) {
			switch e.Kind {
			case client.EventRegistered:
				f.registered(d)
			case client.EventRegisterFailed:
				f.mu.Lock()
				f.stats.Failures++
				f.mu.Unlock()
			}
		},
	}
	if f.spread {
		cfg.LocalIP = local
	}
	cfg.Device.Serial = ep
	if cfg.Device.FirmwareVersion == "" {
		cfg.Device = client.DeviceInfo{Manufacturer: "fotastack", Model: "fleet-sim", Serial: ep,
			FirmwareVersion: "1.0.0", DeviceType: "simulator", HardwareVersion: "1", SoftwareVersion: "fleet"}
	}
	if scheme == "coaps" {
		cfg.PSKIdentity, cfg.PSKKey = id, key
	}
	cfg.TransmissionOptions = Transmission(f.cfg.Profile)
	if f.cfg.Profile.RTT() > time.Second {
		// Long round trips: the handshake's flights and a request's
		// retransmissions need far more than the LAN defaults.
		cfg.HandshakeTimeout = 60 * time.Second
		cfg.RequestTimeout = 120 * time.Second
	}
	c, err := client.New(cfg)
	if err != nil {
		d.close()
		return err
	}
	d.c = c
	if f.cfg.Setup != nil {
		if err := f.cfg.Setup(i, c); err != nil {
			d.close()
			return err
		}
	}
	if f.cfg.SetupVia != nil {
		via := func(hostport string) string { return hostport }
		if server != nil {
			via = func(hostport string) string {
				if hostport != server.String() {
					return hostport
				}
				d.mu.Lock()
				defer d.mu.Unlock()
				if d.relay2 == nil && !d.closed {
					if r, err := newRelay(local, server, f.cfg.Profile, f.cfg.Seed+uint64(i)+1<<32); err == nil {
						d.relay2 = r
					}
				}
				if d.relay2 == nil {
					return hostport
				}
				return d.relay2.Addr().String()
			}
		}
		if err := f.cfg.SetupVia(i, c, via); err != nil {
			d.close()
			return err
		}
	}
	f.mu.Lock()
	f.devices = append(f.devices, d)
	f.stats.Started++
	f.mu.Unlock()
	return c.Start(ctx)
}

func (f *Fleet) registered(d *device) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Registrations++
	if d.registered.CompareAndSwap(false, true) {
		f.stats.Registered++
		f.stats.LastRegister = now
		f.sumReg += now.Sub(d.started)
	}
}

// close closes the device's relays.
func (d *device) close() {
	if d.relay != nil {
		d.relay.Close()
	}
	d.mu.Lock()
	d.closed = true
	r := d.relay2
	d.mu.Unlock()
	if r != nil {
		r.Close()
	}
}

// Transmission is the DTLS and CoAP timers a device uses over link p:
// a handshake flight interval of 1.5 times the longest round trip
// (RTT plus jitter), so a flight is resent only when it or its answer
// was lost, and a CoAP ACK_TIMEOUT of the longest round trip plus the
// time a full 1280-byte datagram takes each way at the link's rates
// (RFC 7252 4.8: ACK_TIMEOUT is meant to exceed the round trip). Links
// faster than the defaults (1 s, 2 s) keep the defaults.
func Transmission(p linksim.Profile) client.TransmissionOptions {
	var t client.TransmissionOptions
	rttMax := p.RTT() + p.Jitter
	if fi := rttMax * 3 / 2; fi > time.Second {
		t.FlightInterval = fi
	}
	ack := rttMax + serialization(1280, p.UpRate) + serialization(1280, p.DownRate)
	if ack > 2*time.Second {
		t.AckTimeout = ack.Round(100 * time.Millisecond)
	}
	return t
}

// serialization is how long n bytes take at rate bit/s (0: unlimited).
func serialization(n, rate int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(int64(n) * 8 * int64(time.Second) / int64(rate))
}

// Stats returns the fleet's counters.
func (f *Fleet) Stats() Stats {
	f.mu.Lock()
	s := f.stats
	if s.Registered > 0 {
		s.MeanRegister = f.sumReg / time.Duration(s.Registered)
	}
	devs := append([]*device(nil), f.devices...)
	f.mu.Unlock()
	for _, d := range devs {
		if d.relay != nil {
			s.Rebinds += d.relay.rebinds()
		}
	}
	return s
}

// Clients returns the started clients, in start order.
func (f *Fleet) Clients() []*client.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*client.Client, len(f.devices))
	for i, d := range f.devices {
		out[i] = d.c
	}
	return out
}

// WaitRegistered waits until n devices have registered or ctx ends.
func (f *Fleet) WaitRegistered(ctx context.Context, n int) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if f.Stats().Registered >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			s := f.Stats()
			return fmt.Errorf("fleet: %d of %d devices registered (%d failures): %w", s.Registered, n, s.Failures, ctx.Err())
		case <-t.C:
		}
	}
}

// Stop stops every device (each de-registers if it can, in parallel,
// bounded by its own request timeout) and the relays.
func (f *Fleet) Stop() {
	f.cancel()
	<-f.done
	f.mu.Lock()
	devs := append([]*device(nil), f.devices...)
	f.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, d := range devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d.c.Stop()
			d.close()
		}()
	}
	wg.Wait()
}
