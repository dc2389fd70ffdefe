package dm

import (
	"sync"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// Device is one registered LwM2M client as the server holds it in memory:
// its registration, the session it last spoke over, and the requests that
// wait for it while it sleeps (queue mode).
type Device struct {
	mu       sync.Mutex
	reg      store.Registration
	sess     *transport.Session
	lastSeen time.Time
	queue    []*queued
	closed   bool
	format   formatCache // BestFormat of reg.Links and reg.Version
}

// formatCache keeps BestFormat's answer for the links and version it was
// computed from (parsing the links on every request is not free).
type formatCache struct {
	links, version string
	f              lwm2m.ContentFormat
	announced      []lwm2m.ContentFormat
	ok             bool
}

func newDevice(r store.Registration) *Device { return &Device{reg: r} }

// ID is the registration ID (the {id} of /rd/{id}).
func (d *Device) ID() string { return d.reg.ID } // immutable

// Endpoint is the client's endpoint name.
func (d *Device) Endpoint() string { return d.reg.Endpoint } // immutable

// Registration returns a copy of the current registration.
func (d *Device) Registration() store.Registration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reg
}

// Session returns the session the device last spoke over, or nil (after a
// restart, before it spoke).
func (d *Device) Session() *transport.Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sess
}

func (d *Device) bind(s *transport.Session, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sess = s
	d.lastSeen = now
	d.reg.Address = s.RemoteAddr().String()
}

func (d *Device) update(p RegisterParams, s *transport.Session, now time.Time) store.Registration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Lifetime != 0 {
		d.reg.Lifetime = p.Lifetime
	}
	if p.Binding != "" {
		d.reg.Binding = p.Binding
		d.reg.Queue = p.Queue
	} else if p.Queue {
		d.reg.Queue = true
	}
	if p.SMS != "" {
		d.reg.SMS = p.SMS
	}
	if p.Links != "" {
		d.reg.Links = p.Links
	}
	d.reg.Updated = now
	d.reg.Address = s.RemoteAddr().String()
	d.reg.Transport = s.Scheme
	d.reg.Security = s.Security
	d.reg.Identity = s.Identity
	d.sess = s
	d.lastSeen = now
	return d.reg
}

// awake reports whether requests may be sent now: always for a device not
// in queue mode; for a queue-mode device only within the awake window after
// it last spoke (LwM2M Core 6.5).
func (d *Device) awake(now time.Time, window time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.reg.Queue || (!d.lastSeen.IsZero() && now.Sub(d.lastSeen) < window)
}

func (d *Device) seen(now time.Time) {
	d.mu.Lock()
	d.lastSeen = now
	d.mu.Unlock()
}

func (d *Device) close() {
	d.mu.Lock()
	q := d.queue
	d.queue = nil
	d.closed = true
	d.mu.Unlock()
	for _, x := range q {
		x.finish(nil, ErrUnknownDevice)
	}
}
