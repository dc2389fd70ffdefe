package firmware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/blockpull"
	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// ObjectID is the Firmware Update object's ID.
const ObjectID = 5

// Resource IDs of the Firmware Update object, version 1.1 (LwM2M Core E.6).
const (
	ResPackage          = 0
	ResPackageURI       = 1
	ResUpdate           = 2
	ResState            = 3
	ResUpdateResult     = 5
	ResPkgName          = 6
	ResPkgVersion       = 7
	ResProtocolSupport  = 8
	ResDeliveryMethod   = 9
	ResCancel           = 10
	ResSeverity         = 11
	ResLastStateChange  = 12
	ResMaximumDeferTime = 13
)

// Protocol Support values (/5/0/8) this device offers: CoAP and CoAPS.
const (
	ProtocolCoAP  = 0
	ProtocolCoAPS = 1
)

// DeliveryBoth is Delivery Method 2 (/5/0/9): pull and push.
const DeliveryBoth = 2

// maxURILen is the longest Package URI the object takes: the top of the
// resource's range in the model (LwM2M Core E.6: 0..255 bytes).
var maxURILen = maxLength(model, ResPackageURI)

var errTooBig = errors.New("package larger than the staging area")

// model is the Firmware Update object at the version the device
// implements (client.FirmwareObjectVersion); defs are the registry's
// definitions of the resources this object implements, in increasing ID
// order.
var model, defs = firmwareModel()

func firmwareModel() (*objects.ObjectModel, []client.ResourceDef) {
	m, ok := client.Model(ObjectID, client.FirmwareObjectVersion)
	if !ok {
		panic(fmt.Sprintf("firmware: no built-in model of object %d version %s", ObjectID, client.FirmwareObjectVersion))
	}
	d, err := client.Defs(m, ResPackage, ResPackageURI, ResUpdate, ResState, ResUpdateResult,
		ResPkgName, ResPkgVersion, ResProtocolSupport, ResDeliveryMethod, ResCancel, ResSeverity,
		ResLastStateChange, ResMaximumDeferTime)
	if err != nil {
		// The IDs are fixed and the models embedded: a broken build,
		// which the package tests catch.
		panic("firmware: " + err.Error())
	}
	return m, d
}

// maxLength is the greatest byte length resource r of m allows. It panics
// on a model without one, which the package tests rule out.
func maxLength(m *objects.ObjectModel, r uint16) int {
	res, ok := m.Resource(r)
	if !ok || len(res.Lengths) == 0 {
		panic(fmt.Sprintf("firmware: %v gives resource %d no length range", m, r))
	}
	var top float64
	for _, iv := range res.Lengths {
		top = max(top, iv.Max)
	}
	return int(top)
}

// Config is what the Firmware Update object needs from its device.
type Config struct {
	// Flash is the device's flash (inplace layout, provisioned); the
	// object stages packages in its staging area and installs from there.
	// The caller keeps ownership and closes it after Close.
	Flash *inplace.Flash
	// StateDir is where the progress record lives (created if missing).
	StateDir string
	// PSKIdentity and PSKKey are the DTLS credentials for coaps:// Package
	// URIs: the ones the device uses with its LwM2M server.
	PSKIdentity string
	PSKKey      []byte
	// Credentials, when set, is asked for the PSK at each coaps pull
	// instead (Attach sets it to the client's: bootstrap may change them).
	Credentials func() (identity string, key []byte)
	// BlockSize is the Block2 size the device asks for when pulling, a
	// power of two from 64 to 1024 (default 1024).
	BlockSize int
	// MaxWindow is how many Block2 requests the device keeps in flight at
	// most when the server grants more than one (default 8). The grant
	// is the Package URI's query parameter nstart=N (RFC 7252 4.7: NSTART
	// is set per endpoint pair by configuration; our server states it per
	// device type in the URI it writes). Without a grant the device asks
	// one block at a time (NSTART 1), as before and as any server expects.
	MaxWindow int
	// Retries is how many times in a row a pull request may fail (time
	// out, connection refused) before the download ends with result 4
	// (or 7 if the server never answered); default 4.
	Retries int
	// RetryWait is the pause before a retry (default 500 ms).
	RetryWait time.Duration
	// RequestTimeout bounds one pull GET with its retransmissions
	// (default 10 s); AckTimeout is CoAP's ACK_TIMEOUT for those requests
	// (default 2 s, RFC 7252 4.8).
	RequestTimeout time.Duration
	AckTimeout     time.Duration
	// Via, when set, maps the host:port of a Package URI to the address
	// the pull dials instead (a proxy, or a simulated link in between).
	Via func(hostport string) string
	// FlightInterval is the DTLS handshake's retransmission timer of a
	// coaps pull (0: pion's 1 s); raise it above the round trip on slow
	// links (client.TransmissionOptions says why).
	FlightInterval time.Duration
	// HandshakeTimeout bounds the DTLS handshake of a coaps pull (10 s).
	HandshakeTimeout time.Duration
	// Session, when set, is asked at each pull attempt for the device's
	// current session with its LwM2M server (client.Client.ServerSession;
	// Attach sets it). When the Package URI names that same server
	// (scheme and host:port), the Block2 GETs go over that session: no
	// second DTLS handshake, three round trips fewer on a slow link.
	// Other URIs, or no session, dial as before.
	Session func() (conn *udpclient.Conn, scheme, hostport string)
	// Install tunes the in-place installer.
	Install inplace.Options
	// Defer, when set, is asked at Update whether the device postpones
	// the install (LwM2M Core E.6, Update Result 11): it returns how long,
	// 0 for now. The wait is capped by Maximum Defer Period (/5/0/13) and
	// a critical Severity (/5/0/11) is never deferred.
	Defer func(severity int) time.Duration
	// OnReboot is called after the simulated reboot that ends an Update,
	// with what booted: the device reports the new version in /3/0/3 and
	// re-registers (Attach wires both). err is the boot's failure, if any.
	OnReboot func(boot inplace.BootResult, err error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Object is the Firmware Update object (/5) with one instance. It
// implements client.Object, client.RawHandler (the Block1 push to /5/0/0)
// and client.ChangeNotifier. Create it with Open; Close stops its
// goroutines.
type Object struct {
	cfg Config
	st  *staging
	log *slog.Logger

	// flashMu serialises flash access (staging writes, verify, install):
	// inplace.Flash is not safe for concurrent use.
	flashMu sync.Mutex

	mu         sync.Mutex
	rec        record
	hook       func(lwm2m.Path)
	pending    []lwm2m.Path // changed resources, notified after mu is released
	gen        uint64       // bumped by every download start/stop: stale goroutines see it
	push       pushState
	pullCancel context.CancelFunc
	deferT     *time.Timer
	closed     bool

	wg sync.WaitGroup // pull, install and deferred-update goroutines
}

// Open makes the object from the device's stored progress. It is also the
// power-up path: a download in progress resumes (pull) or waits for the
// server to continue (push), and an update interrupted by a power cut is
// finished by inplace.Boot and its result recorded.
func Open(cfg Config) (*Object, error) {
	if cfg.Flash == nil {
		return nil, errors.New("firmware: Config.Flash is nil")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("firmware: Config.StateDir is empty")
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 1024
	}
	if _, err := blockpull.SZXOf(cfg.BlockSize); err != nil || cfg.BlockSize < 64 {
		return nil, fmt.Errorf("firmware: block size %d: want a power of two from 64 to 1024", cfg.BlockSize)
	}
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = 8
	}
	if cfg.Retries == 0 {
		cfg.Retries = 4
	}
	if cfg.RetryWait == 0 {
		cfg.RetryWait = 500 * time.Millisecond
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 2 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("firmware: state dir: %w", err)
	}
	st, err := newStaging(cfg.Flash)
	if err != nil {
		return nil, err
	}
	rec, err := loadRecord(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	o := &Object{cfg: cfg, st: st, rec: rec, log: cfg.Logger.With("object", "firmware")}
	if rec.Done > st.size() {
		// The record names more than staging holds (another flash?):
		// forget the download rather than read past the area.
		o.rec.Done, o.rec.Total = 0, 0
	}
	o.mu.Lock()
	switch o.rec.State {
	case StateUpdating:
		// Power went off during the install: boot finishes it.
		o.finishInterrupted()
	case StateDownloading:
		if o.rec.Method == methodPull {
			if u, res := parsePackageURI(o.rec.URI); res == ResultInitial {
				o.runPull(u)
			} else {
				o.enter(StateIdle, res)
			}
		} else {
			// Push: the server continues the Block1 transfer at the
			// block after Done (it learns where from a 4.08 answer).
			o.push = pushState{active: true, next: o.rec.Done, size: o.rec.BlockSize}
		}
	case StateDownloaded:
		if !o.rec.DeferUntil.IsZero() {
			o.scheduleDeferred(time.Until(o.rec.DeferUntil))
		}
	}
	o.unlock()
	return o, nil
}

// Close stops downloads, deferral timers and waits for an install that
// is running to end. The flash stays open (the caller's).
func (o *Object) Close() error {
	o.mu.Lock()
	o.closed = true
	o.gen++
	if o.pullCancel != nil {
		o.pullCancel()
		o.pullCancel = nil
	}
	o.stopDeferred()
	o.mu.Unlock()
	o.wg.Wait()
	return nil
}

// State returns the current state and update result.
func (o *Object) State() (State, Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rec.State, o.rec.Result
}

// Progress returns the bytes of the package staged so far and its size
// when known (0 otherwise).
func (o *Object) Progress() (done, total int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rec.Done, o.rec.Total
}

// unlock releases mu and then fires the change hook for what changed, so
// that observations (which read the object) never run under mu.
func (o *Object) unlock() {
	ps, hook := o.pending, o.hook
	o.pending = nil
	o.mu.Unlock()
	if hook != nil {
		for _, p := range ps {
			hook(p)
		}
	}
}

func (o *Object) changed(r uint16) {
	o.pending = append(o.pending, lwm2m.ResourcePath(ObjectID, 0, r))
}

// enter moves to state s with result r, records the time of a state
// change (/5/0/12) and persists the record. The caller holds mu.
func (o *Object) enter(s State, r Result) {
	if o.rec.State != s {
		o.rec.LastChange = time.Now().UTC().Truncate(time.Second)
		o.changed(ResState)
		o.changed(ResLastStateChange)
	}
	if o.rec.Result != r {
		o.changed(ResUpdateResult)
	}
	o.log.Debug("firmware state", "from", o.rec.State, "to", s, "result", r)
	o.rec.State, o.rec.Result = s, r
	o.persist(true)
}

// save persists the record without fsync (download progress, settings).
func (o *Object) save() { o.persist(false) }

// persist writes the record; a failure is logged (the state machine goes
// on: losing progress only costs a re-download).
func (o *Object) persist(sync bool) {
	if err := saveRecord(o.cfg.StateDir, o.rec, sync); err != nil {
		o.log.Warn("firmware: persist progress", "err", err)
	}
}

// clearDownload forgets the download (URI, ETag, bytes, package name and
// version). The caller holds mu.
func (o *Object) clearDownload() {
	o.gen++
	if o.rec.URI != "" {
		o.changed(ResPackageURI)
	}
	o.rec.Method, o.rec.URI, o.rec.ETag = methodNone, "", nil
	o.rec.Done, o.rec.Total, o.rec.BlockSize = 0, 0, 0
	o.rec.PkgName, o.rec.PkgVersion, o.rec.DeferUntil = "", "", time.Time{}
	o.push = pushState{}
	o.stopDeferred()
	o.changed(ResPkgName)
	o.changed(ResPkgVersion)
}

// ID implements client.Object.
func (o *Object) ID() uint16 { return ObjectID }

// Version implements client.Object: the model's object version.
func (o *Object) Version() string { return model.Version }

// Instances implements client.Object: the single instance 0.
func (o *Object) Instances() []uint16 { return []uint16{0} }

// Resources implements client.Object.
func (o *Object) Resources(inst uint16) ([]client.ResourceDef, error) {
	if inst != 0 {
		return nil, fmt.Errorf("%v: %w", lwm2m.InstancePath(ObjectID, inst), client.ErrNotFound)
	}
	return append([]client.ResourceDef(nil), defs...), nil
}

// SetChangeHook implements client.ChangeNotifier.
func (o *Object) SetChangeHook(f func(lwm2m.Path)) {
	o.mu.Lock()
	o.hook = f
	o.mu.Unlock()
}

func def(r uint16) (client.ResourceDef, bool) {
	for _, d := range defs {
		if d.ID == r {
			return d, true
		}
	}
	return client.ResourceDef{}, false
}

// value is resource r's current value; the caller holds mu.
func (o *Object) value(r uint16) []lwm2m.Entry {
	p := lwm2m.ResourcePath(ObjectID, 0, r)
	one := func(v lwm2m.Value) []lwm2m.Entry { return []lwm2m.Entry{{Path: p, Value: v}} }
	switch r {
	case ResPackageURI:
		return one(lwm2m.String(o.rec.URI))
	case ResState:
		return one(lwm2m.Integer(int64(o.rec.State)))
	case ResUpdateResult:
		return one(lwm2m.Integer(int64(o.rec.Result)))
	case ResPkgName:
		return one(lwm2m.String(o.rec.PkgName))
	case ResPkgVersion:
		return one(lwm2m.String(o.rec.PkgVersion))
	case ResProtocolSupport:
		return []lwm2m.Entry{
			{Path: lwm2m.ResourceInstancePath(ObjectID, 0, r, 0), Value: lwm2m.Integer(ProtocolCoAP)},
			{Path: lwm2m.ResourceInstancePath(ObjectID, 0, r, 1), Value: lwm2m.Integer(ProtocolCoAPS)},
		}
	case ResDeliveryMethod:
		return one(lwm2m.Integer(DeliveryBoth))
	case ResSeverity:
		return one(lwm2m.Integer(int64(o.rec.Severity)))
	case ResLastStateChange:
		return one(lwm2m.Time(o.rec.LastChange))
	case ResMaximumDeferTime:
		return one(lwm2m.Unsigned(uint64(o.rec.MaxDefer)))
	}
	return nil
}

// Read implements client.Object.
func (o *Object) Read(p lwm2m.Path) ([]lwm2m.Entry, error) {
	if p.Object() != ObjectID || p.Len() < 2 || p.Instance() != 0 {
		return nil, fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if p.IsInstance() {
		var out []lwm2m.Entry
		for _, d := range defs {
			if d.Readable() {
				out = append(out, o.value(d.ID)...)
			}
		}
		return out, nil
	}
	d, ok := def(p.Resource())
	if !ok {
		return nil, fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	if !d.Readable() {
		return nil, fmt.Errorf("read %v: %w", p, client.ErrNotAllowed)
	}
	es := o.value(d.ID)
	if p.IsResourceInstance() {
		for _, e := range es {
			if e.Path == p {
				return []lwm2m.Entry{e}, nil
			}
		}
		return nil, fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	return es, nil
}

// Write implements client.Object: Package URI, Severity, Maximum Defer
// Period and, from a non-blockwise write (a small package, or a TLV
// instance write), Package.
func (o *Object) Write(p lwm2m.Path, entries []lwm2m.Entry, replace bool) error {
	if p.Object() != ObjectID || p.Len() < 2 || p.Instance() != 0 {
		return fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	// Check all, then apply: a write is all or nothing.
	for _, e := range entries {
		if !p.Contains(e.Path) || e.Path.Len() != 3 {
			return fmt.Errorf("write %v: entry %v: %w", p, e.Path, client.ErrBadRequest)
		}
		d, ok := def(e.Path.Resource())
		if !ok {
			return fmt.Errorf("write %v: %w", e.Path, client.ErrNotFound)
		}
		if !d.Writable() {
			return fmt.Errorf("write %v: %w", e.Path, client.ErrNotAllowed)
		}
		switch d.ID {
		case ResPackageURI:
			if len(e.Value.Str()) > maxURILen {
				return fmt.Errorf("write %v: URI of %d bytes, at most %d: %w", e.Path, len(e.Value.Str()), maxURILen, client.ErrBadRequest)
			}
		case ResSeverity:
			if s := e.Value.Int(); s < SeverityCritical || s > SeverityMinor {
				return fmt.Errorf("write %v: severity %d not in 0..2: %w", e.Path, s, client.ErrBadRequest)
			}
		case ResMaximumDeferTime:
			if e.Value.Int() < 0 {
				return fmt.Errorf("write %v: negative period: %w", e.Path, client.ErrBadRequest)
			}
		}
	}
	for _, e := range entries {
		var err error
		switch e.Path.Resource() {
		case ResPackage:
			err = o.writeWhole(e.Value.Bytes())
		case ResPackageURI:
			err = o.writeURI(e.Value.Str())
		case ResSeverity:
			o.mu.Lock()
			o.rec.Severity = int(e.Value.Int())
			o.changed(ResSeverity)
			o.save()
			o.unlock()
		case ResMaximumDeferTime:
			o.mu.Lock()
			o.rec.MaxDefer = e.Value.Int()
			o.changed(ResMaximumDeferTime)
			o.save()
			o.unlock()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeURI is a write of /5/0/1.
func (o *Object) writeURI(uri string) error {
	o.mu.Lock()
	defer o.unlock()
	h := o.rec.State.handler()
	if uri == "" {
		return h.reset(o)
	}
	return h.writeURI(o, uri)
}

// Execute implements client.Object: Update and Cancel.
func (o *Object) Execute(p lwm2m.Path, args string) error {
	if p.Object() != ObjectID || !p.IsResource() || p.Instance() != 0 {
		return fmt.Errorf("execute %v: %w", p, client.ErrNotFound)
	}
	o.mu.Lock()
	defer o.unlock()
	if o.closed {
		return fmt.Errorf("execute %v: object closed: %w", p, client.ErrNotAllowed)
	}
	h := o.rec.State.handler()
	switch p.Resource() {
	case ResUpdate:
		return h.update(o)
	case ResCancel:
		return h.cancel(o)
	}
	if _, ok := def(p.Resource()); ok {
		return fmt.Errorf("execute %v: not executable: %w", p, client.ErrNotAllowed)
	}
	return fmt.Errorf("execute %v: %w", p, client.ErrNotFound)
}

// Create implements client.Object: the object is single-instance.
func (o *Object) Create(inst uint16, _ []lwm2m.Entry) error {
	return fmt.Errorf("create /5/%d: single-instance object: %w", inst, client.ErrNotAllowed)
}

// Delete implements client.Object: the instance cannot be deleted.
func (o *Object) Delete(inst uint16) error {
	return fmt.Errorf("delete /5/%d: %w", inst, client.ErrNotAllowed)
}

// deferral is how long the device postpones an Update now (0: install).
// The caller holds mu.
func (o *Object) deferral() time.Duration {
	if o.cfg.Defer == nil || o.rec.Severity == SeverityCritical || !o.rec.DeferUntil.IsZero() {
		return 0
	}
	d := o.cfg.Defer(o.rec.Severity)
	if max := time.Duration(o.rec.MaxDefer) * time.Second; d > max {
		d = max
	}
	return max(d, 0)
}

// scheduleDeferred installs after d. The caller holds mu.
func (o *Object) scheduleDeferred(d time.Duration) {
	if o.rec.DeferUntil.IsZero() {
		o.rec.DeferUntil = time.Now().Add(d)
		o.save()
	}
	o.stopDeferred()
	gen := o.gen
	o.wg.Add(1)
	o.deferT = time.AfterFunc(max(d, 0), func() {
		defer o.wg.Done()
		o.mu.Lock()
		defer o.unlock()
		o.deferT = nil
		if o.closed || o.gen != gen || o.rec.State != StateDownloaded {
			return
		}
		o.startInstall()
	})
}

// stopDeferred cancels a pending deferred install. The caller holds mu.
func (o *Object) stopDeferred() {
	if o.deferT != nil && o.deferT.Stop() {
		o.wg.Done() // the callback will not run
	}
	o.deferT = nil
}

var _ client.Object = (*Object)(nil)
var _ client.RawHandler = (*Object)(nil)
var _ client.ChangeNotifier = (*Object)(nil)
