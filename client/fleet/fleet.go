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
	// Logger for fleet events; the devices' own logs are discarded.
	Logger *slog.Logger
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
	cfg Config

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
	if server != nil {
		r, err := newRelay(server, f.cfg.Profile, f.cfg.Seed+uint64(i))
		if err != nil {
			return err
		}
		d.relay = r
		uri = scheme + "://" + r.Addr().String()
	}
	cfg := client.Config{
		Endpoint: ep, ServerURI: uri, Lifetime: f.cfg.Lifetime, Queue: f.cfg.Queue,
		Device: client.DeviceInfo{Manufacturer: "fotastack", Model: "fleet-sim", Serial: ep,
			FirmwareVersion: "1.0.0", DeviceType: "simulator", HardwareVersion: "1", SoftwareVersion: "fleet"},
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
	if scheme == "coaps" {
		cfg.PSKIdentity, cfg.PSKKey = id, key
	}
	if f.cfg.Profile.RTT() > time.Second {
		// Long round trips: the handshake's flights and a request's
		// retransmissions need far more than the LAN defaults.
		cfg.HandshakeTimeout = 60 * time.Second
		cfg.RequestTimeout = 120 * time.Second
	}
	c, err := client.New(cfg)
	if err != nil {
		if d.relay != nil {
			d.relay.Close()
		}
		return err
	}
	d.c = c
	if f.cfg.Setup != nil {
		if err := f.cfg.Setup(i, c); err != nil {
			if d.relay != nil {
				d.relay.Close()
			}
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
			if d.relay != nil {
				d.relay.Close()
			}
		}()
	}
	wg.Wait()
}
