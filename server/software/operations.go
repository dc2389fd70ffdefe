package software

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
	"github.com/fotastack/fota/server/dm"
)

// Operations on a device's application.
const (
	OpInstall    = "install"
	OpUninstall  = "uninstall"
	OpActivate   = "activate"
	OpDeactivate = "deactivate"
)

// Software Management resources and values the server uses (LwM2M Core
// E.9).
const (
	resPkgName, resPkgVersion, resPackage, resPackageURI, resInstall = 0, 1, 2, 3, 4
	resUninstall, resUpdateState, resSupported, resUpdateResult      = 6, 7, 8, 9
	resActivate, resDeactivate, resActivationState, resStatusReason  = 10, 11, 12, 16

	stateInitial, stateDelivered, stateInstalled = 0, 3, 4
)

// Instance is one /9 instance as the device reports it.
type Instance struct {
	Instance     int    `json:"instance"`
	Name         string `json:"name"`
	Version      string `json:"version"`
	UpdateState  int    `json:"updateState"` // 0 INITIAL .. 4 INSTALLED
	UpdateResult int    `json:"updateResult"`
	Active       bool   `json:"active"`
	StatusReason string `json:"statusReason,omitempty"`
}

// Job is one operation on one device's application: what the API starts
// and reports while it runs and after.
type Job struct {
	Endpoint string `json:"endpoint"`
	App      string `json:"app"`
	Version  string `json:"version,omitempty"`
	Op       string `json:"op"`
	Push     bool   `json:"push,omitempty"`
	Instance int    `json:"instance"` // -1 until known
	// Phase: starting, downloading, installing, uninstalling, activating,
	// deactivating, done, failed.
	Phase        string    `json:"phase"`
	UpdateState  int       `json:"updateState"`
	UpdateResult int       `json:"updateResult"`
	Done         bool      `json:"done"`
	Error        string    `json:"error,omitempty"`
	Started      time.Time `json:"started"`
	Updated      time.Time `json:"updated"`
}

type jobKey struct{ ep, app string }

// Request is what Start is asked.
type Request struct {
	Endpoint, App, Version, Op string
	// Push sends the package by Block1 to /9/x/2 instead of writing its
	// URI to /9/x/3 for the device to pull.
	Push bool
	// Timeout bounds the job (default 10 minutes).
	Timeout time.Duration
}

// Start begins an operation on a device's application and returns its
// job; Job reports how it goes. One operation per device and application
// runs at a time (ErrBusy).
func (m *Manager) Start(req Request) (Job, error) {
	switch req.Op {
	case OpInstall:
		if req.Version == "" {
			return Job{}, fmt.Errorf("%w: install needs a version", ErrBadApp)
		}
		if _, err := m.Find(req.App, req.Version); err != nil {
			return Job{}, err
		}
	case OpUninstall, OpActivate, OpDeactivate:
	default:
		return Job{}, fmt.Errorf("%w: operation %q: want install, uninstall, activate or deactivate", ErrBadApp, req.Op)
	}
	if m.dm.Device(req.Endpoint) == nil {
		return Job{}, fmt.Errorf("%w: %q", dm.ErrUnknownDevice, req.Endpoint)
	}
	if req.Timeout <= 0 {
		req.Timeout = 10 * time.Minute
	}
	now := time.Now().UTC()
	j := &Job{Endpoint: req.Endpoint, App: req.App, Version: req.Version, Op: req.Op, Push: req.Push, Instance: -1,
		Phase: "starting", Started: now, Updated: now}
	k := jobKey{req.Endpoint, req.App}
	m.mu.Lock()
	if old := m.jobs[k]; old != nil && !old.Done {
		m.mu.Unlock()
		return Job{}, fmt.Errorf("%w: %s on %s (%s)", ErrBusy, old.Op, req.Endpoint, old.Phase)
	}
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		return Job{}, errors.New("software: closed")
	}
	m.jobs[k] = j
	m.trimJobs()
	out := *j
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, req.Timeout)
		defer cancel()
		err := m.run(ctx, req, j)
		m.update(j, func() {
			j.Done = true
			if err != nil {
				j.Phase, j.Error = "failed", err.Error()
			} else {
				j.Phase = "done"
			}
		})
		m.dm.Logger().Info("app operation", "endpoint", req.Endpoint, "app", req.App, "op", req.Op, "err", err)
	}()
	return out, nil
}

// trimJobs drops the oldest finished jobs beyond MaxJobs. m.mu is held.
func (m *Manager) trimJobs() {
	if len(m.jobs) <= m.cfg.MaxJobs {
		return
	}
	var done []jobKey
	for k, j := range m.jobs {
		if j.Done {
			done = append(done, k)
		}
	}
	sort.Slice(done, func(a, b int) bool { return m.jobs[done[a]].Updated.Before(m.jobs[done[b]].Updated) })
	for _, k := range done[:min(len(done), len(m.jobs)-m.cfg.MaxJobs)] {
		delete(m.jobs, k)
	}
}

// Job returns the last job on ep's application name.
func (m *Manager) Job(ep, name string) (Job, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.jobs[jobKey{ep, name}]
	if j == nil {
		return Job{}, false
	}
	return *j, true
}

func (m *Manager) update(j *Job, f func()) {
	m.mu.Lock()
	f()
	j.Updated = time.Now().UTC()
	m.mu.Unlock()
}

// Instances reads the device's /9 instances.
func (m *Manager) Instances(ctx context.Context, ep string) ([]Instance, error) {
	resp, err := m.dm.Read(ctx, ep, "/9", nil)
	if err != nil {
		return nil, err
	}
	if resp.Code == codes.NotFound {
		return nil, nil // no /9 instances (or no /9 at all)
	}
	if !resp.Success() {
		return nil, fmt.Errorf("read /9: device answered %v", resp.Code)
	}
	entries, err := lwm2m.Decode(resp.Format, lwm2m.ObjectPath(9), resp.Payload, models)
	if err != nil {
		return nil, fmt.Errorf("read /9: %w", err)
	}
	return group(entries), nil
}

// group makes the instances of /9 entries, in ID order.
func group(entries []lwm2m.Entry) []Instance {
	byID := map[int]*Instance{}
	var ids []int
	for _, e := range entries {
		if e.Path.Len() < 3 {
			continue
		}
		id := int(e.Path.Instance())
		in := byID[id]
		if in == nil {
			in = &Instance{Instance: id}
			byID[id] = in
			ids = append(ids, id)
		}
		switch e.Path.Resource() {
		case resPkgName:
			in.Name = e.Value.Text()
		case resPkgVersion:
			in.Version = e.Value.Text()
		case resUpdateState:
			in.UpdateState, _ = strconv.Atoi(e.Value.Text())
		case resUpdateResult:
			in.UpdateResult, _ = strconv.Atoi(e.Value.Text())
		case resActivationState:
			in.Active = e.Value.Text() == "true" || e.Value.Text() == "1"
		case resStatusReason:
			in.StatusReason = e.Value.Text()
		}
	}
	sort.Ints(ids)
	out := make([]Instance, 0, len(ids))
	for _, id := range ids {
		out = append(out, *byID[id])
	}
	return out
}

var models = objects.Default()

// run is one job.
func (m *Manager) run(ctx context.Context, req Request, j *Job) error {
	insts, err := m.Instances(ctx, req.Endpoint)
	if err != nil {
		return err
	}
	var cur *Instance
	for i := range insts {
		if insts[i].Name == req.App {
			cur = &insts[i]
			break
		}
	}
	if cur != nil {
		m.update(j, func() { j.Instance, j.UpdateState, j.UpdateResult = cur.Instance, cur.UpdateState, cur.UpdateResult })
	}
	switch req.Op {
	case OpInstall:
		return m.install(ctx, req, j, insts, cur)
	case OpUninstall:
		if cur == nil {
			return fmt.Errorf("%w: %s has no %s in /9", ErrState, req.Endpoint, req.App)
		}
		m.update(j, func() { j.Phase = "uninstalling" })
		path := fmt.Sprintf("/9/%d", cur.Instance)
		if err := m.execute(ctx, req.Endpoint, path, resUninstall, ""); err != nil {
			return err
		}
		if _, err := m.await(ctx, req.Endpoint, j, cur.Instance, func(in Instance) (bool, error) {
			if in.UpdateResult >= 50 {
				return false, fmt.Errorf("uninstall failed on the device: result %d %s", in.UpdateResult, in.StatusReason)
			}
			return in.UpdateState == stateInitial, nil
		}); err != nil {
			return err
		}
		resp, err := m.dm.Delete(ctx, req.Endpoint, path)
		if err != nil {
			return fmt.Errorf("delete %s: %w", path, err)
		}
		if !resp.Success() {
			return fmt.Errorf("delete %s: device answered %v", path, resp.Code)
		}
		return nil
	default: // activate, deactivate
		if cur == nil || cur.UpdateState != stateInstalled {
			return fmt.Errorf("%w: %s has no installed %s to %s", ErrState, req.Endpoint, req.App, req.Op)
		}
		act := req.Op == OpActivate
		m.update(j, func() { j.Phase = req.Op[:len(req.Op)-1] + "ing" })
		res := resDeactivate
		if act {
			res = resActivate
		}
		if err := m.execute(ctx, req.Endpoint, fmt.Sprintf("/9/%d", cur.Instance), res, ""); err != nil {
			return err
		}
		_, err := m.await(ctx, req.Endpoint, j, cur.Instance, func(in Instance) (bool, error) { return in.Active == act, nil })
		return err
	}
}

// install brings the package to the device and installs it: an instance
// of its own (or the installed one, prepared for an update), the package
// pushed or its URI written, DELIVERED awaited, Install executed,
// INSTALLED awaited.
func (m *Manager) install(ctx context.Context, req Request, j *Job, insts []Instance, cur *Instance) error {
	a, err := m.Find(req.App, req.Version)
	if err != nil {
		return err
	}
	id := -1
	if cur != nil {
		id = cur.Instance
		switch {
		case cur.UpdateState == stateInstalled && cur.Version == req.Version:
			return nil // installed already
		case cur.UpdateState == stateInstalled:
			// LwM2M Core E.9: Uninstall "1" keeps the application for the
			// package that updates it.
			m.update(j, func() { j.Phase = "uninstalling" })
			if err := m.execute(ctx, req.Endpoint, fmt.Sprintf("/9/%d", id), resUninstall, "1"); err != nil {
				return err
			}
		case cur.UpdateState != stateInitial:
			if err := m.execute(ctx, req.Endpoint, fmt.Sprintf("/9/%d", id), resUninstall, ""); err != nil {
				return err
			}
		}
		if cur.UpdateState != stateInitial {
			if _, err := m.await(ctx, req.Endpoint, j, id, func(in Instance) (bool, error) { return in.UpdateState == stateInitial, nil }); err != nil {
				return err
			}
		}
	} else {
		// A new instance: the lowest free ID, created with Update
		// Supported Objects so the payload names it.
		used := map[int]bool{}
		for _, in := range insts {
			used[in.Instance] = true
		}
		for id = 0; used[id]; id++ {
		}
		dev := m.dm.Device(req.Endpoint)
		if dev == nil {
			return dm.ErrUnknownDevice
		}
		cf := dev.BestFormat()
		payload, err := lwm2m.Encode(cf, lwm2m.InstancePath(9, uint16(id)),
			[]lwm2m.Entry{{Path: lwm2m.ResourcePath(9, uint16(id), resSupported), Value: lwm2m.Boolean(false)}})
		if err != nil {
			return fmt.Errorf("encode the new /9 instance: %w", err)
		}
		resp, err := m.dm.Create(ctx, req.Endpoint, "/9", cf, payload)
		if err != nil {
			return fmt.Errorf("create /9/%d: %w", id, err)
		}
		if !resp.Success() {
			return fmt.Errorf("create /9/%d: device answered %v (does it implement Software Management?)", id, resp.Code)
		}
	}
	m.update(j, func() { j.Instance, j.Phase = id, "downloading" })
	inst := fmt.Sprintf("/9/%d", id)
	if req.Push {
		p, size, err := m.Package(a)
		if err != nil {
			return err
		}
		data := make([]byte, size)
		if _, err := p.ReadAt(data, 0); err != nil {
			return fmt.Errorf("read package: %w", err)
		}
		opaque := lwm2m.FormatOpaque
		resp, err := m.dm.Do(ctx, req.Endpoint, dm.Request{Method: codes.PUT, Path: inst + "/2", Format: &opaque, Payload: data})
		if err != nil {
			return fmt.Errorf("push the package to %s/2: %w", inst, err)
		}
		if !resp.Success() {
			return fmt.Errorf("push the package to %s/2: device answered %v", inst, resp.Code)
		}
	} else {
		uri, err := m.packageURI(req.Endpoint, a)
		if err != nil {
			return err
		}
		resp, err := m.dm.Write(ctx, req.Endpoint, inst+"/3", true, lwm2m.FormatText, []byte(uri))
		if err != nil {
			return fmt.Errorf("write the Package URI to %s/3: %w", inst, err)
		}
		if !resp.Success() {
			return fmt.Errorf("write the Package URI to %s/3: device answered %v", inst, resp.Code)
		}
	}
	failed := func(in Instance) error {
		if in.UpdateResult >= 50 {
			return fmt.Errorf("the device reports result %d: %s", in.UpdateResult, in.StatusReason)
		}
		return nil
	}
	if _, err := m.await(ctx, req.Endpoint, j, id, func(in Instance) (bool, error) {
		return in.UpdateState == stateDelivered || in.UpdateState == stateInstalled, failed(in)
	}); err != nil {
		return err
	}
	m.update(j, func() { j.Phase = "installing" })
	if err := m.execute(ctx, req.Endpoint, inst, resInstall, ""); err != nil {
		return err
	}
	in, err := m.await(ctx, req.Endpoint, j, id, func(in Instance) (bool, error) {
		return in.UpdateState == stateInstalled, failed(in)
	})
	if err != nil {
		return err
	}
	if in.Name != req.App || in.Version != req.Version {
		return fmt.Errorf("the device installed %s %s, not %s %s", in.Name, in.Version, req.App, req.Version)
	}
	return nil
}

func (m *Manager) execute(ctx context.Context, ep, inst string, res int, args string) error {
	path := fmt.Sprintf("%s/%d", inst, res)
	resp, err := m.dm.Execute(ctx, ep, path, args)
	if err != nil {
		return fmt.Errorf("execute %s: %w", path, err)
	}
	if !resp.Success() {
		msg := ""
		if len(resp.Payload) > 0 && len(resp.Payload) < 300 {
			msg = ": " + string(resp.Payload)
		}
		return fmt.Errorf("execute %s: device answered %v%s", path, resp.Code, msg)
	}
	return nil
}

// await reads the instance every Poll until ok says done (or fails).
func (m *Manager) await(ctx context.Context, ep string, j *Job, id int, ok func(Instance) (bool, error)) (Instance, error) {
	t := time.NewTicker(m.cfg.Poll)
	defer t.Stop()
	path := fmt.Sprintf("/9/%d", id)
	for {
		resp, err := m.dm.Read(ctx, ep, path, nil)
		if err == nil && resp.Success() {
			var in Instance
			if in, err = decodeInstance(resp, id); err == nil {
				m.update(j, func() { j.UpdateState, j.UpdateResult = in.UpdateState, in.UpdateResult })
				done, ferr := ok(in)
				if ferr != nil {
					return in, ferr
				}
				if done {
					return in, nil
				}
			}
		} else if err == nil {
			err = fmt.Errorf("read %s: device answered %v", path, resp.Code)
		}
		if err != nil && (errors.Is(err, dm.ErrUnknownDevice) || ctx.Err() != nil) {
			return Instance{}, err
		}
		select {
		case <-ctx.Done():
			return Instance{}, fmt.Errorf("%s: %w (phase %s)", path, ctx.Err(), j.Phase)
		case <-t.C:
		}
	}
}

func decodeInstance(resp *dm.Response, id int) (Instance, error) {
	entries, err := lwm2m.Decode(resp.Format, lwm2m.InstancePath(9, uint16(id)), resp.Payload, models)
	if err != nil {
		return Instance{}, err
	}
	for _, in := range group(entries) {
		if in.Instance == id {
			return in, nil
		}
	}
	return Instance{}, fmt.Errorf("read /9/%d: no values", id)
}

// packageURI is where the device pulls a: the listener it registered over.
func (m *Manager) packageURI(ep string, a App) (string, error) {
	return m.dm.URIFor(ep, m.cfg.PackageHost, PathOf(a))
}
