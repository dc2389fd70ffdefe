package campaign

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/firmware"
)

// The state machine of one device in a campaign. Each state names what the
// server has seen of the device, and each resumes after a server restart
// by first looking at the device (/5/0/3, /5/0/5, /3/0/3) rather than
// repeating the last step:
//
//	queued       not started: nothing was sent to the device
//	downloading  the package was offered (Block1 write to /5/0/0 or firmware.Package
//	             URI written to /5/0/1); the device is fetching it. On resume,
//	             a device still Downloading keeps going; one Idle again is
//	             offered the package again (a pull resumes by its ETag).
//	downloaded   the device holds the package (State 2). On resume, a device
//	             already Updating or running the target is not executed again.
//	updating     Update (/5/0/2) was executed; success only when the device
//	             has registered anew running the target version (/3/0/3),
//	             failure when it reports an Update Result of 2..10.
//	succeeded, failed, skipped (another device type or version), cancelled
//	             (campaign aborted before the device started): final.

// Campaign device states.
const (
	DeviceQueued      = "queued"
	DeviceDownloading = "downloading"
	DeviceDownloaded  = "downloaded"
	DeviceUpdating    = "updating"
	DeviceSucceeded   = "succeeded"
	DeviceFailed      = "failed"
	DeviceSkipped     = "skipped"
	DeviceCancelled   = "cancelled"
)

// Firmware Update object (/5) states and results, LwM2M Core E.6.
const (
	fwIdle        = 0
	fwDownloading = 1
	fwDownloaded  = 2
	fwUpdating    = 3

	resultSuccess  = 1
	resultDeferred = 11 // LwM2M 1.1: the device deferred the update; not a failure
)

// maxOffers bounds how often a package is offered to one device.
const maxOffers = 3

// isTerminal: the device is done in this campaign, one way or another.
func isTerminal(d *Device) bool {
	switch d.State {
	case DeviceSucceeded, DeviceSkipped, DeviceCancelled:
		return true
	case DeviceFailed:
		return d.RetryAt.IsZero() // else it is tried again
	}
	return false
}

// isActive: the device is mid-update (its driver resumes it after a restart).
func isActive(d *Device) bool {
	switch d.State {
	case DeviceDownloading, DeviceDownloaded, DeviceUpdating:
		return true
	}
	return false
}

func (m *Engine) snapshot(id, ep string) (Campaign, Device, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.runs[id]
	if r == nil || r.devices[ep] == nil {
		return Campaign{}, Device{}, false
	}
	return r.c, *r.devices[ep], true
}

// commit stores d and makes it the device's state in memory.
func (m *Engine) commit(id string, d Device) {
	d.Updated = time.Now().UTC()
	if err := m.saveDevice(id, d); err != nil {
		m.log.Error("store campaign device", "campaign", id, "endpoint", d.Endpoint, "err", err)
	}
	m.mu.Lock()
	if r := m.runs[id]; r != nil {
		*r.devices[d.Endpoint] = d
	}
	m.mu.Unlock()
	m.publishDevice(id, d)
}

// drive takes one device through the campaign until it is final or ctx
// ends (abort, server stop).
func (m *Engine) drive(ctx context.Context, id, ep string) {
	wake := m.wakeChan(ep)
	first := time.Now() // of this driver: a device that never answers fails after the timeout
	for ctx.Err() == nil {
		c, d, ok := m.snapshot(id, ep)
		if !ok || isTerminal(&d) {
			return
		}
		before := d
		wait, err := m.advance(ctx, c, &d)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.log.Debug("campaign device step", "campaign", id, "endpoint", ep, "state", d.State, "err", err)
		}
		if m.cfg.Cluster != nil && errors.Is(err, dm.ErrUnknownDevice) && d == before {
			// Not registered here (any more): a device that rebooted into its
			// update may come back at another node, which can only take the
			// work over once this driver ends and releases its claim. If it
			// comes back here, the scheduler starts a driver again.
			return
		}
		timeout := m.deviceTimeout(c)
		switch {
		case isTerminal(&d) || d.State == DeviceFailed:
		case !d.Started.IsZero() && time.Since(d.Started) > timeout:
			d.State, d.Error = DeviceFailed, fmt.Sprintf("timed out after %s while %s", timeout, before.State)
		case d.Started.IsZero() && time.Since(first) > timeout:
			msg := "no answer"
			if err != nil {
				msg = err.Error()
			}
			d.State, d.Error = DeviceFailed, fmt.Sprintf("not started after %s (device down or unreachable: %s)", timeout, msg)
		}
		if d.State == DeviceFailed && before.State != DeviceFailed {
			m.scheduleRetry(c, &d)
		}
		if d != before {
			if d.State != before.State {
				m.log.Info("campaign device", "campaign", id, "endpoint", ep, "state", d.State, "result", d.Result, "error", d.Error)
			}
			m.commit(id, d)
			m.kick()
		}
		if isTerminal(&d) || d.State == DeviceFailed {
			return // a failed device waiting for a retry is requeued by the scheduler
		}
		if wait {
			t := time.NewTimer(m.cfg.Poll)
			select {
			case <-ctx.Done():
			case <-wake:
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// reqCtx bounds one request to the device: the server's RequestTimeout, or
// for a queue-mode device long enough to wait for it to wake.
func (m *Engine) reqCtx(ctx context.Context, ep string) (context.Context, context.CancelFunc) {
	t := m.srv.RequestTimeout()
	if dev := m.srv.Device(ep); dev != nil && dev.Registration().Queue {
		t = time.Duration(dev.Registration().Lifetime)*time.Second + m.srv.QueueAwake()
	}
	return context.WithTimeout(ctx, t)
}

// fwState reads /5/0/3 and /5/0/5.
func (m *Engine) fwState(ctx context.Context, ep string) (state, result int, err error) {
	v, err := m.readValues(ctx, ep, "/5/0/3", "/5/0/5")
	if err != nil {
		return 0, 0, err
	}
	if state, err = intValue(v, "/5/0/3"); err != nil {
		return 0, 0, err
	}
	result, err = intValue(v, "/5/0/5")
	return state, result, err
}

// readValues reads paths of ep as text. Every request to the device costs a
// round trip of its own (CoAP's NSTART=1 lets only one out at a time, and
// over NB-IoT one is seconds), so a device of LwM2M 1.1 or later gets one
// Read-Composite; a 1.0 device, or one that refuses the composite read,
// one Read per path. A path the device did not answer is missing from the
// map.
func (m *Engine) readValues(ctx context.Context, ep string, paths ...string) (map[string]string, error) {
	if dev := m.srv.Device(ep); dev != nil && takesComposite(dev) {
		v, ok, err := m.askComposite(ctx, dev, paths, false)
		if err != nil || ok {
			return v, err
		}
		// Refused or undecodable: the plain reads below still work.
	}
	v := make(map[string]string, len(paths))
	for _, p := range paths {
		rctx, cancel := m.reqCtx(ctx, ep)
		resp, err := m.srv.Read(rctx, ep, p, format(lwm2m.FormatText))
		cancel()
		if err != nil {
			return nil, err // the device did not answer
		}
		if resp.Success() {
			v[p] = strings.TrimSpace(string(resp.Payload))
		}
	}
	return v, nil
}

// askComposite sends one Read-Composite of paths, or with observe one
// Observe-Composite, whose answer holds their current values. ok is false
// when the device refused it or its answer does not decode: the caller
// then asks path by path.
func (m *Engine) askComposite(ctx context.Context, dev *dm.Device, paths []string, observe bool) (vals map[string]string, ok bool, err error) {
	ep := dev.Endpoint()
	rctx, cancel := m.reqCtx(ctx, ep)
	defer cancel()
	op, ask := "read-composite", m.srv.ReadComposite
	if observe {
		op, ask = "observe-composite", m.srv.ObserveComposite
	}
	resp, err := ask(rctx, ep, paths, compositeFormat(dev))
	if err != nil {
		return nil, false, fmt.Errorf("%s %v: %w", op, paths, err)
	}
	if !resp.Success() {
		return nil, false, nil
	}
	v, err := compositeValues(resp)
	return v, err == nil, nil
}

// takesComposite reports whether dev's LwM2M version has the composite
// operations (Core 1.1, 6.3.8 and 6.4.3).
func takesComposite(dev *dm.Device) bool {
	v := dev.Registration().Version
	return v != "" && v != "1.0"
}

// compositeFormat is the SenML format to ask a device's composite answers
// in: CBOR where it announced it (fewer bytes over the radio).
func compositeFormat(dev *dm.Device) lwm2m.ContentFormat {
	if dev.BestFormat() == lwm2m.FormatSenMLCBOR {
		return lwm2m.FormatSenMLCBOR
	}
	return lwm2m.FormatSenMLJSON
}

// compositeValues decodes a composite answer into text values by path.
func compositeValues(resp *dm.Response) (map[string]string, error) {
	entries, err := lwm2m.Decode(resp.Format, lwm2m.Root, resp.Payload, models)
	if err != nil {
		return nil, err
	}
	v := make(map[string]string, len(entries))
	for _, e := range entries {
		v[e.Path.String()] = e.Value.Text()
	}
	return v, nil
}

func intValue(v map[string]string, path string) (int, error) {
	s, ok := v[path]
	if !ok {
		return 0, fmt.Errorf("read %s: no value", path)
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("read %s: %q is not an integer", path, s)
	}
	return n, nil
}

func failedResult(r int) bool { return r >= 2 && r <= 10 }

// advance takes one step of d's state machine; wait says whether to wait
// for the device before the next step.
func (m *Engine) advance(ctx context.Context, c Campaign, d *Device) (wait bool, err error) {
	dev := m.srv.Device(d.Endpoint)
	if dev == nil {
		return true, dm.ErrUnknownDevice // rebooting, or not registered yet
	}
	if c.App != "" {
		return m.advanceApp(c, d)
	}
	switch d.State {
	case DeviceQueued:
		return m.start(ctx, c, d)
	case DeviceDownloading:
		st, res, err := m.fwState(ctx, d.Endpoint)
		if err != nil {
			return true, err
		}
		d.Result = res
		switch {
		case st == fwDownloaded:
			// Execute at once: the state was just read, reading it again
			// in DeviceDownloaded would cost two more round trips.
			d.State, d.Progress = DeviceDownloaded, 100
			return m.executeUpdate(ctx, c, d, dev)
		case st == fwUpdating:
			d.State, d.Progress, d.RegID = DeviceUpdating, 100, dev.ID()
			return true, nil
		case st == fwDownloading:
			if c.Method == DeliveryPull && d.PackageSize > 0 {
				p := 100 * m.fw.Fetched(d.Endpoint, d.Package) / d.PackageSize
				if p >= d.Progress+10 || (p == 100 && d.Progress != 100) {
					d.Progress = p
				}
			}
			return true, nil
		case failedResult(res) && d.Offers > 0:
			d.State, d.Error = DeviceFailed, fmt.Sprintf("download failed: update result %d", res)
			return false, nil
		case d.Offers == 0 || time.Since(d.OfferedAt) > 3*m.cfg.Poll:
			if d.Offers >= maxOffers {
				d.State, d.Error = DeviceFailed, fmt.Sprintf("device stayed idle after %d offers of the package", d.Offers)
				return false, nil
			}
			return m.offer(ctx, c, d)
		}
		return true, nil
	case DeviceDownloaded:
		if done, err := m.checkDone(ctx, c, d, dev); done || err != nil {
			return err != nil, err
		}
		st, res, err := m.fwState(ctx, d.Endpoint)
		if err != nil {
			return true, err
		}
		d.Result = res
		switch st {
		case fwUpdating:
			d.State, d.RegID = DeviceUpdating, dev.ID()
			return true, nil
		case fwDownloaded:
			return m.executeUpdate(ctx, c, d, dev)
		default: // Idle: the package is gone (device rebooted, cancelled)
			if failedResult(res) {
				d.State, d.Error = DeviceFailed, fmt.Sprintf("update result %d", res)
				return false, nil
			}
			if d.RegID != "" && res == resultSuccess {
				return true, nil // updated; its new registration is on the way
			}
			d.State, d.Progress, d.RegID = DeviceDownloading, 0, ""
			return false, nil
		}
	case DeviceUpdating:
		if done, err := m.checkDone(ctx, c, d, dev); done || err != nil {
			return err != nil, err
		}
		st, res, err := m.fwState(ctx, d.Endpoint)
		if err != nil {
			return true, err
		}
		d.Result = res
		if st == fwIdle && failedResult(res) {
			d.State, d.Error = DeviceFailed, fmt.Sprintf("update failed: update result %d", res)
			return false, nil
		}
		return true, nil
	}
	return true, nil
}

// executeUpdate executes /5/0/2 on a device in state Downloaded.
func (m *Engine) executeUpdate(ctx context.Context, c Campaign, d *Device, dev *dm.Device) (bool, error) {
	// The registration Update runs under is noted first: a device may
	// reboot before its answer to Execute reaches us, and then its new
	// registration running the target is the answer.
	d.RegID = dev.ID()
	m.commit(c.ID, *d)
	rctx, cancel := m.reqCtx(ctx, d.Endpoint)
	resp, err := m.srv.Execute(rctx, d.Endpoint, "/5/0/2", "")
	cancel()
	if err != nil {
		return true, fmt.Errorf("execute update: %w", err)
	}
	if !resp.Success() {
		d.State, d.Error = DeviceFailed, fmt.Sprintf("execute /5/0/2: %v", resp.Code)
		return false, nil
	}
	d.State = DeviceUpdating
	return true, nil
}

// checkDone reports success once the device has registered anew (its
// registration is not the one Update was executed under) and runs the
// target version.
func (m *Engine) checkDone(ctx context.Context, c Campaign, d *Device, dev *dm.Device) (bool, error) {
	if d.RegID == "" || dev.ID() == d.RegID {
		return false, nil
	}
	vals, err := m.readValues(ctx, d.Endpoint, "/3/0/3", "/5/0/5")
	if err != nil {
		return false, err
	}
	v, ok := vals["/3/0/3"]
	if !ok {
		return false, errors.New("read /3/0/3: no value")
	}
	if res, err := intValue(vals, "/5/0/5"); err == nil {
		d.Result = res
	}
	if v != c.Version {
		// Re-registered on the old image: the device rolled back.
		d.State, d.Error = DeviceFailed, fmt.Sprintf("device re-registered running %q, not %q (update result %d)", v, c.Version, d.Result)
		return true, nil
	}
	d.State, d.Progress, d.Error = DeviceSucceeded, 100, ""
	return true, nil
}

// start checks a queued device's type and version, picks its package and
// offers it. Over NB-IoT every round trip costs seconds, and NSTART=1 lets
// one request out at a time, so a device of LwM2M 1.1 or later gets a
// single Observe-Composite of /3/0/3, /3/0/17, /5/0/3 and /5/0/5: its
// answer gives the version, the type and the /5 state, and its
// notifications tell the driver of every /5 change. A device the answer
// shows Idle is offered the package straight away: two round trips from
// queued to offered.
func (m *Engine) start(ctx context.Context, c Campaign, d *Device) (bool, error) {
	vals, err := m.observeStart(ctx, d.Endpoint)
	if err != nil {
		return true, err
	}
	version, ok := vals["/3/0/3"]
	if !ok {
		m.stopObserving(ctx, d.Endpoint)
		return true, errors.New("read /3/0/3: no value")
	}
	devType := vals["/3/0/17"]
	if devType == "" {
		devType = c.DeviceType // the device does not tell: trust the targeting
	}
	d.DeviceType, d.FromVersion = devType, version
	want := c.Targets.DeviceType
	if want == "" {
		want = c.DeviceType
	}
	if devType != want {
		d.State, d.Error = DeviceSkipped, fmt.Sprintf("device type %q, campaign is for %q", devType, want)
		m.stopObserving(ctx, d.Endpoint)
		return false, nil
	}
	if len(c.Targets.Versions) > 0 {
		ok := false
		for _, v := range c.Targets.Versions {
			ok = ok || v == version
		}
		if !ok {
			d.State, d.Error = DeviceSkipped, fmt.Sprintf("runs version %q, not one targeted", version)
			m.stopObserving(ctx, d.Endpoint)
			return false, nil
		}
	}
	if version == c.Version {
		d.State, d.Progress, d.Error = DeviceSucceeded, 100, "already running the target version"
		m.stopObserving(ctx, d.Endpoint)
		return false, nil
	}
	img, err := m.fw.Image(c.Image)
	if err != nil {
		d.State, d.Error = DeviceFailed, err.Error()
		return false, nil
	}
	if !c.AllowDowngrade && m.isNewer(img, version) {
		d.State, d.Error = DeviceSkipped, fmt.Sprintf("runs %s, newer than the target %s: moving it back needs a campaign that allows downgrades", version, c.Version)
		m.stopObserving(ctx, d.Endpoint)
		return false, nil
	}
	p, err := m.fw.PackageFor(img, version, c.Full)
	if err != nil {
		d.State, d.Error = DeviceFailed, err.Error()
		return false, nil
	}
	d.Package, d.PackageKind, d.PackageSize, d.ImageSize = p.ID, p.Kind, p.Size, img.Size
	d.State, d.Progress, d.Started = DeviceDownloading, 0, time.Now().UTC()
	if st, err := intValue(vals, "/5/0/3"); err == nil && st == fwIdle {
		if res, err := intValue(vals, "/5/0/5"); err == nil {
			d.Result = res
		}
		return m.offer(ctx, c, d)
	}
	// Busy with another package, or the state is unknown: the next step
	// reads it (DeviceDownloading) before offering.
	return false, nil
}

// startPaths are what start observes.
var startPaths = []string{"/3/0/3", "/3/0/17", "/5/0/3", "/5/0/5"}

// observeStart observes startPaths and returns their current values: one
// Observe-Composite on a 1.1 device, else a Read of /3/0/3 and /3/0/17 and
// an Observe each of /5/0/3 and /5/0/5.
func (m *Engine) observeStart(ctx context.Context, ep string) (map[string]string, error) {
	dev := m.srv.Device(ep)
	if dev == nil {
		return nil, dm.ErrUnknownDevice
	}
	if takesComposite(dev) {
		v, ok, err := m.askComposite(ctx, dev, startPaths, true)
		if err != nil || ok {
			return v, err
		}
		m.stopObserving(ctx, ep) // refused or undecodable: one path at a time
	}
	v, err := m.readValues(ctx, ep, "/3/0/3", "/3/0/17")
	if err != nil {
		return nil, err
	}
	for _, path := range []string{"/5/0/3", "/5/0/5"} {
		rctx, cancel := m.reqCtx(ctx, ep)
		resp, err := m.srv.Observe(rctx, ep, path, format(lwm2m.FormatText))
		cancel()
		if err != nil {
			m.log.Debug("campaign: observe", "endpoint", ep, "path", path, "err", err)
			continue
		}
		if resp.Success() {
			v[path] = strings.TrimSpace(string(resp.Payload))
		}
	}
	return v, nil
}

// stopObserving cancels the observations start made on a device the
// campaign does not update.
func (m *Engine) stopObserving(ctx context.Context, ep string) {
	for _, o := range []struct {
		paths     []string
		composite bool
	}{{startPaths, true}, {[]string{"/5/0/3"}, false}, {[]string{"/5/0/5"}, false}} {
		rctx, cancel := m.reqCtx(ctx, ep)
		_, err := m.srv.CancelObservation(rctx, ep, o.paths, o.composite)
		cancel()
		if err != nil && !errors.Is(err, dm.ErrNotObserved) {
			m.log.Debug("campaign: cancel observation", "endpoint", ep, "paths", o.paths, "err", err)
		}
	}
}

// offer sends the package: a Block1 write to /5/0/0 (push) or the firmware.Package
// URI to /5/0/1 (pull).
func (m *Engine) offer(ctx context.Context, c Campaign, d *Device) (bool, error) {
	p, err := m.fw.Package(d.Package)
	if err != nil {
		d.State, d.Error = DeviceFailed, err.Error()
		return false, nil
	}
	d.Offers++
	d.OfferedAt = time.Now().UTC()
	// Stored before the offer goes out, so a restart counts it.
	m.commit(c.ID, *d)
	if c.Method == DeliveryPush {
		data, err := m.fw.PackageData(p)
		if err != nil {
			return true, err
		}
		// Bounded by the package's size (two seconds a block, as a slow
		// link's round trips go), not by the whole device timeout: a push
		// that stalls is offered again, up to maxOffers times.
		wctx, cancel := context.WithTimeout(ctx, m.srv.RequestTimeout()+time.Duration(len(data)/1024+1)*2*time.Second)
		defer cancel()
		// Progress as the device takes the blocks, stored every 10 %: the
		// API and its event stream show a push moving, not 0 then 100.
		d.Progress = 0
		progress := func(sent, total int) {
			if p := 100 * sent / total; p >= d.Progress+10 && p < 100 {
				d.Progress = p
				m.commit(c.ID, *d)
			}
		}
		resp, err := m.srv.Do(wctx, d.Endpoint, dm.Request{Method: codes.PUT, Path: "/5/0/0", Format: format(lwm2m.FormatOpaque), Payload: data, Progress: progress})
		if err != nil {
			return true, fmt.Errorf("push package: %w", err)
		}
		if !resp.Success() {
			d.State, d.Error = DeviceFailed, fmt.Sprintf("push package to /5/0/0: %v", resp.Code)
			return false, nil
		}
		d.Progress = 100
		return false, nil
	}
	uri, err := m.packageURI(d.Endpoint, p)
	if n := m.cfg.pullWindow(d.DeviceType); err == nil && n > 1 {
		uri += "?nstart=" + strconv.Itoa(n)
	}
	if err != nil {
		d.State, d.Error = DeviceFailed, err.Error()
		return false, nil
	}
	m.fw.ResetFetched(d.Endpoint, p.ID)
	rctx, cancel := m.reqCtx(ctx, d.Endpoint)
	defer cancel()
	resp, err := m.srv.Write(rctx, d.Endpoint, "/5/0/1", true, lwm2m.FormatText, []byte(uri))
	if err != nil {
		return true, fmt.Errorf("write package uri: %w", err)
	}
	if !resp.Success() {
		d.State, d.Error = DeviceFailed, fmt.Sprintf("write package URI to /5/0/1: %v", resp.Code)
		return false, nil
	}
	return true, nil
}

// packageURI is where the device fetches p: the listener it registered
// over, so it downloads with the credentials it already has.
func (m *Engine) packageURI(ep string, p firmware.Package) (string, error) {
	return m.srv.URIFor(ep, m.cfg.PackageHost, firmware.PathOf(p))
}

// format is a pointer to f, for Request's optional formats.
func format(f lwm2m.ContentFormat) *lwm2m.ContentFormat { return &f }

// models types the values devices report (read only, built once).
var models = objects.Default()

// deviceTimeout is the campaign's device timeout, else the engine's.
func (m *Engine) deviceTimeout(c Campaign) time.Duration {
	if t, err := time.ParseDuration(c.DeviceTimeout); err == nil && t > 0 {
		return t
	}
	return m.cfg.DeviceTimeout
}

// scheduleRetry sets when a device that just failed is tried again, if the
// campaign retries and the device has retries left: RetryBackoff after the
// first failure, doubling each time.
func (m *Engine) scheduleRetry(c Campaign, d *Device) {
	if d.Attempts >= c.Retries {
		return
	}
	backoff, err := time.ParseDuration(c.RetryBackoff)
	if err != nil || backoff <= 0 {
		backoff = time.Minute
	}
	d.RetryAt = time.Now().UTC().Add(backoff << d.Attempts)
}

// requeue puts a failed device back in the queue, for an automatic retry
// (attempt counted) or the operator's (Engine.Retry: counts reset).
func requeue(d *Device, operator bool) {
	if operator {
		d.Attempts = 0
	} else {
		d.Attempts++
	}
	d.State, d.Progress, d.Offers = DeviceQueued, 0, 0
	d.RetryAt, d.Started, d.Waiting, d.OfferedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	d.Error = ""
}
