// Package software is the device side of application management: the
// LwM2M Software Management object (/9, LwM2M Core 1.2 Appendix E.9), one
// instance per application, with its state machine (Update State INITIAL,
// DOWNLOAD STARTED, DOWNLOADED, DELIVERED, INSTALLED; Activation State;
// Update Result), push delivery (a Block1 write of the package to
// /9/x/2, streamed to the device's storage block by block), pull delivery
// (a coap:// or coaps:// Package URI in /9/x/3 fetched with the device's
// own Block2 loop, resumed after a reboot), and Install, Uninstall,
// Activate and Deactivate.
//
// Packages are those of package delta/app: signed, naming the application
// and its version, their payload either the application's bytes or a
// file-tree delta (delta/tree) that Install applies to the application's
// directory journaled, so that a power cut leaves the old or the new tree.
// Every instance keeps a record and its files in Config.Dir/<instance>/:
// the device's simulated storage.
package software

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// ObjectID is the Software Management object's ID.
const ObjectID = 9

// Resource IDs of Software Management, object version 1.1.
const (
	ResPkgName          = 0
	ResPkgVersion       = 1
	ResPackage          = 2
	ResPackageURI       = 3
	ResInstall          = 4
	ResUninstall        = 6
	ResUpdateState      = 7
	ResSupportedObjects = 8
	ResUpdateResult     = 9
	ResActivate         = 10
	ResDeactivate       = 11
	ResActivationState  = 12
	ResStatusReason     = 16
	ResStart            = 19
	ResStop             = 20
	ResOperationalState = 21
)

// State is the Update State (/9/x/7).
type State int

// Update States, LwM2M Core E.9.
const (
	StateInitial         State = 0
	StateDownloadStarted State = 1
	StateDownloaded      State = 2
	StateDelivered       State = 3
	StateInstalled       State = 4
)

func (s State) String() string {
	switch s {
	case StateInitial:
		return "INITIAL"
	case StateDownloadStarted:
		return "DOWNLOAD STARTED"
	case StateDownloaded:
		return "DOWNLOADED"
	case StateDelivered:
		return "DELIVERED"
	case StateInstalled:
		return "INSTALLED"
	}
	return "state " + strconv.Itoa(int(s))
}

// Result is the Update Result (/9/x/9).
type Result int

// Update Results, LwM2M Core E.9: 0..3 progress and success, 50..59
// failures.
const (
	ResultInitial          Result = 0
	ResultDownloading      Result = 1
	ResultInstalled        Result = 2
	ResultDelivered        Result = 3 // downloaded and verified
	ResultNoStorage        Result = 50
	ResultOutOfMemory      Result = 51
	ResultConnectionLost   Result = 52
	ResultIntegrity        Result = 53
	ResultUnsupportedType  Result = 54
	ResultInvalidURI       Result = 56
	ResultDeviceError      Result = 57
	ResultInstallFailure   Result = 58
	ResultUninstallFailure Result = 59
)

// Operational States (/9/x/21).
const (
	opRunning = 1
	opStopped = 3
)

// model and defs: the registry's Software Management and the resources
// this object implements.
var model, defs = softwareModel()

// maxURILen is the longest Package URI: the model's 0..255 bytes.
const maxURILen = 255

func softwareModel() (*objects.ObjectModel, []client.ResourceDef) {
	m, ok := client.Model(ObjectID, "1.1")
	if !ok {
		panic("software: no built-in model of object 9 version 1.1")
	}
	d, err := client.Defs(m, ResPkgName, ResPkgVersion, ResPackage, ResPackageURI, ResInstall, ResUninstall,
		ResUpdateState, ResSupportedObjects, ResUpdateResult, ResActivate, ResDeactivate, ResActivationState,
		ResStatusReason, ResStart, ResStop, ResOperationalState)
	if err != nil {
		panic("software: " + err.Error())
	}
	return m, d
}

func def(r uint16) (client.ResourceDef, bool) {
	for _, d := range defs {
		if d.ID == r {
			return d, true
		}
	}
	return client.ResourceDef{}, false
}

// Config is what the object needs from its device.
type Config struct {
	// Dir is the device's storage for applications (created if missing).
	Dir string
	// TrustedKey, when set, must have signed every package (and the tree
	// deltas inside); without it the device checks a package's SHA-256
	// only, and refuses tree deltas (their own signature needs a key).
	TrustedKey ed25519.PublicKey
	// MaxPackage bounds one package: the storage's room (default 64 MiB).
	MaxPackage int64
	// Session and Credentials, as in client/firmware: a pull from the
	// device's own server goes over its session; a coaps:// pull from
	// elsewhere dials with these credentials. Attach sets both.
	Session     func() (conn *udpclient.Conn, scheme, hostport string)
	Credentials func() (identity string, key []byte)
	// BlockSize is the Block2 size of a pull (default 1024).
	BlockSize int
	// Retries in a row before a pull fails (default 4), RetryWait between
	// them (500 ms), RequestTimeout of one GET (10 s).
	Retries        int
	RetryWait      time.Duration
	RequestTimeout time.Duration
	Logger         *slog.Logger

	// cutAfter, in tests, cuts the power after that many file-system
	// operations of a tree install (tree.Options.CutAfter).
	cutAfter int
}

// instance is one application.
type instance struct {
	id         uint16
	dir        string
	rec        record
	gen        uint64 // bumped when a download starts or stops
	pullCancel func()
	push       pushState
}

// Object is the Software Management object. Create it with Open; Close
// stops its goroutines.
type Object struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	insts   map[uint16]*instance
	hook    func(lwm2m.Path)
	pending []lwm2m.Path
	closed  bool

	wg sync.WaitGroup
}

// Open loads the instances stored in cfg.Dir. It is the power-up path: a
// pull in progress resumes, an install a power cut interrupted is finished.
func Open(cfg Config) (*Object, error) {
	if cfg.Dir == "" {
		return nil, errors.New("software: Config.Dir is empty")
	}
	if cfg.MaxPackage == 0 {
		cfg.MaxPackage = 64 << 20
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 1024
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
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("software: storage: %w", err)
	}
	o := &Object{cfg: cfg, log: cfg.Logger.With("object", "software"), insts: map[uint16]*instance{}}
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("software: storage: %w", err)
	}
	o.mu.Lock()
	defer o.unlock()
	for _, e := range ents {
		id, err := strconv.ParseUint(e.Name(), 10, 16)
		if err != nil || !e.IsDir() || id > lwm2m.MaxID {
			continue
		}
		dir := filepath.Join(cfg.Dir, e.Name())
		rec, err := loadRecord(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				// Created but never saved: a cut inside Create.
				_ = os.RemoveAll(dir)
				continue
			}
			return nil, err
		}
		in := &instance{id: uint16(id), dir: dir, rec: rec}
		o.insts[in.id] = in
		switch {
		case rec.Installing:
			o.startInstall(in)
		case rec.State == StateDownloadStarted && rec.Method == methodPull:
			if u, res := parsePackageURI(rec.URI); res == ResultInitial {
				o.runPull(in, u)
			} else {
				o.fail(in, res, "stored Package URI is not usable")
			}
		case rec.State == StateDownloadStarted:
			// Push: the server continues at the block after Done.
			in.push = pushState{active: true, next: rec.Done, size: rec.BlockSize}
		case rec.State == StateDownloaded:
			// Cut between download and verification: verify now.
			o.verify(in)
		}
	}
	return o, nil
}

// Close stops downloads and waits for installs that run to end.
func (o *Object) Close() error {
	o.mu.Lock()
	o.closed = true
	for _, in := range o.insts {
		o.stopPull(in)
	}
	o.mu.Unlock()
	o.wg.Wait()
	return nil
}

// Info is what one instance holds, for the device's own use and tests.
type Info struct {
	Instance      uint16
	Name, Version string
	State         State
	Result        Result
	Active        bool
	Reason        string
	Path          string // the installed application: a file (blob) or a directory (tree); "" if none
}

// Apps lists the instances.
func (o *Object) Apps() []Info {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Info
	for _, id := range o.ids() {
		in := o.insts[id]
		i := Info{Instance: id, Name: in.rec.Name, Version: in.rec.Version, State: in.rec.State, Result: in.rec.Result,
			Active: in.rec.Active, Reason: in.rec.Reason}
		if in.rec.Installed {
			i.Path = o.installedPath(in)
		}
		out = append(out, i)
	}
	return out
}

func (o *Object) ids() []uint16 {
	ids := make([]uint16, 0, len(o.insts))
	for id := range o.insts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (o *Object) installedPath(in *instance) string {
	if in.rec.Kind == kindTree {
		return filepath.Join(in.dir, treeDir)
	}
	return filepath.Join(in.dir, blobFile)
}

// unlock releases mu, then fires the change hook for what changed.
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

func (o *Object) changed(in *instance, rs ...uint16) {
	for _, r := range rs {
		o.pending = append(o.pending, lwm2m.ResourcePath(ObjectID, in.id, r))
	}
}

// enter moves in to state s with result r and persists its record
// (fsynced). The caller holds mu.
func (o *Object) enter(in *instance, s State, r Result) {
	if in.rec.State != s {
		o.changed(in, ResUpdateState)
	}
	if in.rec.Result != r {
		o.changed(in, ResUpdateResult)
	}
	o.log.Debug("software state", "instance", in.id, "from", in.rec.State, "to", s, "result", r)
	in.rec.State, in.rec.Result = s, r
	o.persist(in, true)
}

func (o *Object) persist(in *instance, sync bool) {
	if err := saveRecord(in.dir, in.rec, sync); err != nil {
		o.log.Warn("software: persist instance", "instance", in.id, "err", err)
	}
}

// fail ends a download or install with a failure result and its reason.
// The caller holds mu.
func (o *Object) fail(in *instance, r Result, reason string) {
	o.log.Info("software: failed", "instance", in.id, "result", r, "reason", reason)
	in.rec.Reason = reason
	o.changed(in, ResStatusReason)
	s := StateInitial
	if r == ResultInstallFailure {
		s = StateDelivered // the package stays; Install may be tried again
	}
	if s == StateInitial {
		o.dropDownload(in, r == ResultConnectionLost)
		if !in.rec.Installed || !in.rec.ForUpdate {
			o.clearName(in)
		}
	}
	o.enter(in, s, r)
}

func (o *Object) clearName(in *instance) {
	if in.rec.Name != "" || in.rec.Version != "" {
		o.changed(in, ResPkgName, ResPkgVersion)
	}
	in.rec.Name, in.rec.Version = "", ""
}

// dropDownload forgets the download; keep keeps the bytes and URI so that
// writing the same URI again resumes. The caller holds mu.
func (o *Object) dropDownload(in *instance, keep bool) {
	o.stopPull(in)
	in.push = pushState{}
	if keep {
		return
	}
	in.rec.Method, in.rec.ETag = methodNone, nil
	in.rec.Done, in.rec.Total, in.rec.BlockSize = 0, 0, 0
	_ = os.Remove(filepath.Join(in.dir, packageFile))
}

// ID implements client.Object.
func (o *Object) ID() uint16 { return ObjectID }

// Version implements client.Object.
func (o *Object) Version() string { return model.Version }

// Instances implements client.Object.
func (o *Object) Instances() []uint16 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ids()
}

// Resources implements client.Object.
func (o *Object) Resources(inst uint16) ([]client.ResourceDef, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.insts[inst] == nil {
		return nil, fmt.Errorf("%v: %w", lwm2m.InstancePath(ObjectID, inst), client.ErrNotFound)
	}
	return slices.Clone(defs), nil
}

// SetChangeHook implements client.ChangeNotifier.
func (o *Object) SetChangeHook(f func(lwm2m.Path)) {
	o.mu.Lock()
	o.hook = f
	o.mu.Unlock()
}

func (o *Object) value(in *instance, r uint16) []lwm2m.Entry {
	p := lwm2m.ResourcePath(ObjectID, in.id, r)
	one := func(v lwm2m.Value) []lwm2m.Entry { return []lwm2m.Entry{{Path: p, Value: v}} }
	switch r {
	case ResPkgName:
		return one(lwm2m.String(in.rec.Name))
	case ResPkgVersion:
		return one(lwm2m.String(in.rec.Version))
	case ResUpdateState:
		return one(lwm2m.Integer(int64(in.rec.State)))
	case ResSupportedObjects:
		return one(lwm2m.Boolean(in.rec.Supported))
	case ResUpdateResult:
		return one(lwm2m.Integer(int64(in.rec.Result)))
	case ResActivationState:
		return one(lwm2m.Boolean(in.rec.Active))
	case ResStatusReason:
		return one(lwm2m.String(in.rec.Reason))
	case ResOperationalState:
		s := opStopped
		if in.rec.Running {
			s = opRunning
		}
		return one(lwm2m.Unsigned(uint64(s)))
	}
	return nil
}

// Read implements client.Object.
func (o *Object) Read(p lwm2m.Path) ([]lwm2m.Entry, error) {
	if p.Object() != ObjectID {
		return nil, fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var ins []*instance
	if p.Len() == 1 {
		for _, id := range o.ids() {
			ins = append(ins, o.insts[id])
		}
	} else if in := o.insts[p.Instance()]; in != nil {
		ins = append(ins, in)
	} else {
		return nil, fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	if p.Len() <= 2 {
		var out []lwm2m.Entry
		for _, in := range ins {
			for _, d := range defs {
				if d.Readable() {
					out = append(out, o.value(in, d.ID)...)
				}
			}
		}
		return out, nil
	}
	d, ok := def(p.Resource())
	if !ok || p.IsResourceInstance() {
		return nil, fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	if !d.Readable() {
		return nil, fmt.Errorf("read %v: %w", p, client.ErrNotAllowed)
	}
	return o.value(ins[0], d.ID), nil
}

// Write implements client.Object: Package (a small package in one
// request), Package URI and Update Supported Objects.
func (o *Object) Write(p lwm2m.Path, entries []lwm2m.Entry, replace bool) error {
	if p.Object() != ObjectID || p.Len() < 2 {
		return fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	if err := o.checkWrite(p, entries); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.unlock()
	in := o.insts[p.Instance()]
	if in == nil {
		return fmt.Errorf("%v: %w", p, client.ErrNotFound)
	}
	return o.apply(in, entries)
}

func (o *Object) checkWrite(p lwm2m.Path, entries []lwm2m.Entry) error {
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
		if e.Path.Resource() == ResPackageURI && len(e.Value.Str()) > maxURILen {
			return fmt.Errorf("write %v: URI of %d bytes, at most %d: %w", e.Path, len(e.Value.Str()), maxURILen, client.ErrBadRequest)
		}
	}
	return nil
}

// apply writes checked entries. The caller holds mu.
func (o *Object) apply(in *instance, entries []lwm2m.Entry) error {
	for _, e := range entries {
		var err error
		switch e.Path.Resource() {
		case ResPackage:
			err = o.writeWhole(in, e.Value.Bytes())
		case ResPackageURI:
			err = o.writeURI(in, e.Value.Str())
		case ResSupportedObjects:
			in.rec.Supported = e.Value.Bool()
			o.changed(in, ResSupportedObjects)
			o.persist(in, false)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// canDownload: a new package may come in state INITIAL only (LwM2M Core
// E.9: after Uninstall, or "1" for an update of what is installed).
func (o *Object) canDownload(in *instance) error {
	if in.rec.State != StateInitial && in.rec.State != StateDownloadStarted {
		return fmt.Errorf("/9/%d: a package is %s; uninstall first: %w", in.id, in.rec.State, client.ErrBadRequest)
	}
	if in.rec.Installed && !in.rec.ForUpdate {
		return fmt.Errorf("/9/%d: %s is installed; Uninstall with argument 1 to update it: %w", in.id, in.rec.Name, client.ErrBadRequest)
	}
	return nil
}

// writeURI starts (or, for the same URI after a lost connection, resumes)
// a pull; an empty URI cancels a download. The caller holds mu.
func (o *Object) writeURI(in *instance, uri string) error {
	if uri == "" {
		if in.rec.State == StateDownloadStarted {
			o.dropDownload(in, false)
			in.rec.URI = ""
			o.changed(in, ResPackageURI)
			o.enter(in, StateInitial, ResultInitial)
		}
		return nil
	}
	if err := o.canDownload(in); err != nil {
		return err
	}
	u, res := parsePackageURI(uri)
	if res != ResultInitial {
		o.fail(in, res, "Package URI "+strconv.Quote(uri)+" is not a coap:// or coaps:// URI the device can fetch")
		return nil
	}
	if !(in.rec.Method == methodPull && in.rec.URI == uri && in.rec.Done > 0) {
		o.dropDownload(in, false)
		in.rec.URI, in.rec.Method = uri, methodPull
	}
	in.rec.Reason = ""
	o.enter(in, StateDownloadStarted, ResultDownloading)
	o.runPull(in, u)
	return nil
}

// Execute implements client.Object: Install, Uninstall, Activate,
// Deactivate, Start, Stop.
func (o *Object) Execute(p lwm2m.Path, args string) error {
	if p.Object() != ObjectID || !p.IsResource() {
		return fmt.Errorf("execute %v: %w", p, client.ErrNotFound)
	}
	o.mu.Lock()
	defer o.unlock()
	in := o.insts[p.Instance()]
	if in == nil {
		return fmt.Errorf("execute %v: %w", p, client.ErrNotFound)
	}
	if o.closed {
		return fmt.Errorf("execute %v: object closed: %w", p, client.ErrNotAllowed)
	}
	bad := func(why string) error { return fmt.Errorf("execute %v: %s: %w", p, why, client.ErrBadRequest) }
	switch p.Resource() {
	case ResInstall:
		if in.rec.State != StateDelivered {
			return bad("Install needs a delivered package; the state is " + in.rec.State.String())
		}
		if in.rec.Installing {
			return nil // already running
		}
		in.rec.Installing = true
		o.persist(in, true)
		o.startInstall(in)
		return nil
	case ResUninstall:
		if in.rec.Installing {
			return bad("an install is running")
		}
		forUpdate := false
		switch args {
		case "", "0":
		case "1":
			forUpdate = true
		default:
			return bad("argument " + strconv.Quote(args) + ": want none, 0 (remove) or 1 (prepare for an update)")
		}
		return o.uninstall(in, forUpdate)
	case ResActivate, ResDeactivate:
		if in.rec.State != StateInstalled {
			return bad("nothing installed (state " + in.rec.State.String() + ")")
		}
		act := p.Resource() == ResActivate
		if in.rec.Active != act {
			in.rec.Active = act
			if !act {
				in.rec.Running = false
			}
			o.changed(in, ResActivationState, ResOperationalState)
			o.persist(in, true)
		}
		return nil
	case ResStart, ResStop:
		if !in.rec.Active {
			return bad("the application is not active")
		}
		in.rec.Running = p.Resource() == ResStart
		o.changed(in, ResOperationalState)
		o.persist(in, true)
		return nil
	}
	if _, ok := def(p.Resource()); ok {
		return fmt.Errorf("execute %v: not executable: %w", p, client.ErrNotAllowed)
	}
	return fmt.Errorf("execute %v: %w", p, client.ErrNotFound)
}

// uninstall removes the package and the installed application, or for an
// update keeps the installed one (LwM2M Core E.9). The caller holds mu.
func (o *Object) uninstall(in *instance, forUpdate bool) error {
	o.dropDownload(in, false)
	in.rec.URI, in.rec.Reason = "", ""
	if forUpdate && in.rec.Installed {
		in.rec.ForUpdate = true
		o.enter(in, StateInitial, ResultInitial)
		return nil
	}
	if err := o.removeInstalled(in); err != nil {
		in.rec.Reason = err.Error()
		o.changed(in, ResStatusReason)
		o.enter(in, in.rec.State, ResultUninstallFailure)
		return nil
	}
	o.clearName(in)
	o.enter(in, StateInitial, ResultInitial)
	return nil
}

// removeInstalled deletes the installed files and forgets them. The
// caller holds mu.
func (o *Object) removeInstalled(in *instance) error {
	if err := os.RemoveAll(filepath.Join(in.dir, treeDir)); err != nil {
		return fmt.Errorf("remove the installed tree: %w", err)
	}
	if err := os.Remove(filepath.Join(in.dir, blobFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the installed application: %w", err)
	}
	if in.rec.Active || in.rec.Running {
		o.changed(in, ResActivationState, ResOperationalState)
	}
	in.rec.Installed, in.rec.ForUpdate, in.rec.Active, in.rec.Running = false, false, false, false
	return nil
}

// Create implements client.Object: a new instance in state INITIAL, with
// the writable resources in entries (a Package URI starts its pull).
func (o *Object) Create(inst uint16, entries []lwm2m.Entry) error {
	if err := o.checkWrite(lwm2m.InstancePath(ObjectID, inst), entries); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.unlock()
	if o.insts[inst] != nil {
		return fmt.Errorf("create /9/%d: exists: %w", inst, client.ErrBadRequest)
	}
	dir := filepath.Join(o.cfg.Dir, strconv.Itoa(int(inst)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create /9/%d: storage: %v: %w", inst, err, client.ErrBadRequest)
	}
	in := &instance{id: inst, dir: dir}
	if err := saveRecord(dir, in.rec, true); err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("create /9/%d: %v: %w", inst, err, client.ErrBadRequest)
	}
	o.insts[inst] = in
	return o.apply(in, entries)
}

// Delete implements client.Object: the instance goes with its package and
// its installed application.
func (o *Object) Delete(inst uint16) error {
	o.mu.Lock()
	defer o.unlock()
	in := o.insts[inst]
	if in == nil {
		return fmt.Errorf("delete /9/%d: %w", inst, client.ErrNotFound)
	}
	if in.rec.Installing {
		return fmt.Errorf("delete /9/%d: an install is running: %w", inst, client.ErrBadRequest)
	}
	o.stopPull(in)
	if err := os.RemoveAll(in.dir); err != nil {
		return fmt.Errorf("delete /9/%d: %v: %w", inst, err, client.ErrBadRequest)
	}
	delete(o.insts, inst)
	return nil
}

var _ client.Object = (*Object)(nil)
var _ client.RawHandler = (*Object)(nil)
var _ client.ChangeNotifier = (*Object)(nil)
