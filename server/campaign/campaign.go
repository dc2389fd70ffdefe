package campaign

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/store"
)

// Campaign is a firmware update campaign: its target image, its devices
// (a Selector), its waves, thresholds and window, and its state.
type Campaign = store.Campaign

// Selector chooses a campaign's devices: the listed endpoints, or every
// registered device that matches all the given filters.
type Selector = store.Selector

// Window is a daily maintenance window in UTC.
type Window = store.Window

// Device is one device's progress in a campaign (device.go: its states).
type Device = store.CampaignDevice

// Campaign states.
const (
	Running   = "running"
	Paused    = "paused"
	Aborted   = "aborted"
	Completed = "completed"
)

// Delivery methods (LwM2M Core E.6: /5/0/0 push, /5/0/1 pull).
const (
	DeliveryPush = "push"
	DeliveryPull = "pull"
)

// Errors of campaign operations; the API maps them to 404, 400, 409.
var (
	ErrNoCampaign  = errors.New("no such campaign")
	ErrBadCampaign = errors.New("bad campaign")
	ErrCampaignEnd = errors.New("campaign has ended")
	// ErrDowngrade refuses a campaign that would move devices to an older
	// version than they run, unless it allows downgrades.
	ErrDowngrade = errors.New("campaign would downgrade devices")
	// ErrDuplicate refuses a campaign that repeats one still running.
	ErrDuplicate = errors.New("campaign already exists")
)

func parseHHMM(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%w: time %q is not HH:MM", ErrBadCampaign, s)
	}
	return hh*60 + mm, nil
}

// WindowOpen reports whether t is inside the daily window w (UTC).
func WindowOpen(w Window, t time.Time) bool {
	if w.Start == "" && w.End == "" {
		return true
	}
	s, err1 := parseHHMM(w.Start)
	e, err2 := parseHHMM(w.End)
	if err1 != nil || err2 != nil {
		return false
	}
	t = t.UTC()
	now := t.Hour()*60 + t.Minute()
	if s <= e {
		return now >= s && now < e
	}
	return now >= s || now < e
}

// validate checks and fills defaults.
func validate(c *Campaign) error {
	if c.Method == "" {
		c.Method = DeliveryPull
	}
	if c.Method != DeliveryPush && c.Method != DeliveryPull {
		return fmt.Errorf("%w: method %q (push or pull)", ErrBadCampaign, c.Method)
	}
	if len(c.Waves) == 0 {
		c.Waves = []float64{100}
	}
	prev := 0.0
	for _, w := range c.Waves {
		if math.IsNaN(w) || w <= prev || w > 100 {
			return fmt.Errorf("%w: waves %v must rise strictly and stay within 100", ErrBadCampaign, c.Waves)
		}
		prev = w
	}
	if prev != 100 {
		c.Waves = append(c.Waves, 100)
	}
	if len(c.Waves) > 100 {
		return fmt.Errorf("%w: %d waves", ErrBadCampaign, len(c.Waves))
	}
	if c.Concurrency == 0 {
		c.Concurrency = 10
	}
	if c.Concurrency < 0 || c.Concurrency > 10000 {
		return fmt.Errorf("%w: concurrency %d", ErrBadCampaign, c.Concurrency)
	}
	if c.SuccessThreshold == 0 {
		c.SuccessThreshold = 1
	}
	if c.ErrorThreshold == 0 {
		c.ErrorThreshold = 0.2
	}
	for _, f := range []float64{c.SuccessThreshold, c.ErrorThreshold} {
		if math.IsNaN(f) || f < 0 || f > 1 {
			return fmt.Errorf("%w: thresholds are fractions between 0 and 1", ErrBadCampaign)
		}
	}
	if c.Window.Start != "" || c.Window.End != "" {
		if _, err := parseHHMM(c.Window.Start); err != nil {
			return err
		}
		if _, err := parseHHMM(c.Window.End); err != nil {
			return err
		}
	}
	if c.DeviceTimeout != "" {
		d, err := time.ParseDuration(c.DeviceTimeout)
		if err != nil || d < time.Second {
			return fmt.Errorf("%w: device timeout %q (a duration of 1s or more, as 15s or 2h)", ErrBadCampaign, c.DeviceTimeout)
		}
	}
	if c.Retries < 0 || c.Retries > 10 {
		return fmt.Errorf("%w: retries %d (0 to 10)", ErrBadCampaign, c.Retries)
	}
	if c.Retries > 0 && c.RetryBackoff == "" {
		c.RetryBackoff = "1m"
	}
	if c.RetryBackoff != "" {
		d, err := time.ParseDuration(c.RetryBackoff)
		if err != nil || d < time.Second {
			return fmt.Errorf("%w: retry backoff %q (a duration of 1s or more)", ErrBadCampaign, c.RetryBackoff)
		}
	}
	if len(c.Targets.Endpoints) > 1_000_000 {
		return fmt.Errorf("%w: too many endpoints", ErrBadCampaign)
	}
	for k, v := range c.Targets.Attributes {
		if _, err := path.Match(v, ""); err != nil {
			return fmt.Errorf("%w: attribute %s pattern %q: %v", ErrBadCampaign, k, v, err)
		}
	}
	return nil
}

// waveOf is the wave of the k-th device taken in (0-based): waves are
// sized on Planned; devices beyond it (registered later) go to the last.
func waveOf(c *Campaign, k int) int {
	for i, pct := range c.Waves {
		limit := int(math.Ceil(pct * float64(c.Planned) / 100))
		if i == 0 && limit == 0 {
			limit = 1
		}
		if k < limit {
			return i
		}
	}
	return len(c.Waves) - 1
}

// Config tunes the campaign engine; zero values are defaults.
type Config struct {
	// Tick is how often the scheduler looks at campaigns (default 1 s).
	Tick time.Duration
	// Poll is how often a device's /5 state is read while no notification
	// arrives (default 5 s).
	Poll time.Duration
	// DeviceTimeout fails a device that has not finished in this time
	// (default 2 h).
	DeviceTimeout time.Duration
	// PackageHost is the host (name or IP) that firmware.Package URIs name for pull;
	// default: the listener's address, or 127.0.0.1 when it listens on all
	// interfaces.
	PackageHost string
	// Apps installs applications for campaigns whose target is an
	// application version (server/software); nil: such campaigns are
	// refused.
	Apps AppInstaller
	// Cluster, when set, shares the campaigns with the other nodes of a
	// cluster (server/cluster): every tick the engine reads the campaigns
	// and their devices from the shared store, and drives only devices
	// whose session this node holds and whose work it claimed.
	Cluster *Cluster
	// PullWindow is the number of Block2 requests a device may keep in
	// flight when it pulls a package (NSTART, RFC 7252 4.7, which is set
	// per endpoint pair by configuration), by device type (/3/0/17); the
	// key "*" is for every other type. A window above 1 is stated in the
	// Package URI as the query nstart=N: our client pipelines that many
	// block requests, any other client sends the query back with each GET
	// and the download handler ignores it. Unset: no grant (NSTART 1).
	PullWindow map[string]int
	// DomainOf is the domain of an endpoint ("" for the default domain),
	// so that a campaign's filter selects only its domain's devices (nil:
	// one domain).
	DomainOf func(ep string) string
}

// pullWindow is the window granted to a device of type devType.
func (c Config) pullWindow(devType string) int {
	if n, ok := c.PullWindow[devType]; ok {
		return n
	}
	return c.PullWindow["*"]
}

// Cluster is what the engine needs of a cluster node.
type Cluster struct {
	// Claim returns the endpoints among eps whose work in campaign id this
	// node claimed (SELECT ... FOR UPDATE SKIP LOCKED under a lease the
	// node renews); a claim whose node died lapses and is taken over.
	Claim func(id string, eps []string) []string
	// Release ends the claim when the device's driver stops.
	Release func(id, ep string)
}

// Engine is the campaign engine of a server.
type Engine struct {
	srv *dm.Server
	fw  *firmware.Repository
	st  store.CampaignStore
	log *slog.Logger
	cfg Config

	mu    sync.Mutex
	runs  map[string]*campaignRun
	wakes map[string]chan struct{} // endpoint -> wake-up of its driver

	stop chan struct{}
	wg   sync.WaitGroup
}

// campaignRun is a campaign's in-memory state: its record, its devices
// and the drivers running for them.
type campaignRun struct {
	c       Campaign
	devices map[string]*Device
	order   []string // endpoints in joining order
	active  map[string]context.CancelFunc
}

// New starts the campaign engine over the devices of srv and the packages
// of fw: it restores the campaigns kept in st and resumes the running ones.
// Close stops it.
func New(srv *dm.Server, fw *firmware.Repository, st store.CampaignStore, cfg Config) (*Engine, error) {
	if cfg.Tick == 0 {
		cfg.Tick = time.Second
	}
	if cfg.Poll == 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.DeviceTimeout == 0 {
		cfg.DeviceTimeout = 2 * time.Hour
	}
	m := &Engine{srv: srv, fw: fw, st: st, log: srv.Logger(), cfg: cfg, runs: map[string]*campaignRun{},
		wakes: map[string]chan struct{}{}, stop: make(chan struct{})}
	cs, err := st.Campaigns()
	if err != nil {
		return nil, fmt.Errorf("campaigns: load: %w", err)
	}
	for _, c := range cs {
		devs, err := st.CampaignDevices(c.ID)
		if err != nil {
			return nil, fmt.Errorf("campaigns: load: %w", err)
		}
		r := &campaignRun{c: c, devices: map[string]*Device{}, active: map[string]context.CancelFunc{}}
		for i := range devs {
			d := devs[i]
			r.devices[d.Endpoint] = &d
			r.order = append(r.order, d.Endpoint)
		}
		sort.Slice(r.order, func(i, j int) bool { return r.devices[r.order[i]].Seq < r.devices[r.order[j]].Seq })
		m.runs[c.ID] = r
	}
	evs, cancel := m.srv.Events().Subscribe(1024)
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		defer cancel()
		m.eventLoop(evs)
	}()
	go func() {
		defer m.wg.Done()
		m.schedule()
	}()
	return m, nil
}

// Done is closed when the engine stops (event streams of campaigns end).
func (m *Engine) Done() <-chan struct{} { return m.stop }

// Close stops the scheduler and every device driver. Device states stay
// as stored; the next start resumes them.
func (m *Engine) Close() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	m.mu.Lock()
	for _, r := range m.runs {
		for _, cancel := range r.active {
			cancel()
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
}

func newCampaignID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Create validates c, targets its devices and starts it.
func (m *Engine) Create(c Campaign) (Campaign, error) {
	var img firmware.Image
	var err error
	if c.App != "" {
		if err := m.checkApp(&c); err != nil {
			return Campaign{}, err
		}
		return m.create(c, img)
	}
	img, err = m.fw.Image(c.Image)
	if err != nil && c.DeviceType != "" && c.Version != "" {
		img, err = m.fw.FindImage(c.DeviceType, c.Version)
		if errors.Is(err, firmware.ErrNoImage) {
			err = fmt.Errorf("no %s image at version %s in the repository (upload it first: fota firmware add FILE --device-type %s --version %s)",
				c.DeviceType, c.Version, c.DeviceType, c.Version)
		}
	}
	if err != nil {
		return Campaign{}, fmt.Errorf("%w: target image: %v", ErrBadCampaign, err)
	}
	c.Image, c.DeviceType, c.Version = img.ID, img.DeviceType, img.Version
	return m.create(c, img)
}

// create validates, targets and starts c, whose target is checked.
func (m *Engine) create(c Campaign, img firmware.Image) (Campaign, error) {
	if err := validate(&c); err != nil {
		return Campaign{}, err
	}
	if err := m.refuseDuplicate(c); err != nil {
		return Campaign{}, err
	}
	c.ID = newCampaignID()
	c.State, c.Reason = Running, ""
	c.Wave, c.Joined = 0, 0
	c.Created = time.Now().UTC()
	c.Updated = c.Created
	r := &campaignRun{devices: map[string]*Device{}, active: map[string]context.CancelFunc{}}
	var initial []string
	if len(c.Targets.Endpoints) > 0 {
		seen := map[string]bool{}
		for _, ep := range c.Targets.Endpoints {
			if ep != "" && !seen[ep] {
				seen[ep] = true
				initial = append(initial, ep)
			}
		}
	} else {
		for _, d := range m.srv.Devices() {
			if matches(c.Targets, d) && m.inDomain(c, d.Endpoint()) {
				initial = append(initial, d.Endpoint())
			}
		}
	}
	if c.App == "" {
		if err := m.checkDowngrade(c, img, initial); err != nil {
			return Campaign{}, err
		}
	}
	c.Planned = len(initial)
	r.c = c
	var devs []*Device
	for _, ep := range initial {
		devs = append(devs, r.join(ep))
	}
	recs := make([]Device, len(devs))
	for i, d := range devs {
		recs[i] = *d
	}
	if err := m.st.PutCampaign(r.c, recs); err != nil {
		return Campaign{}, fmt.Errorf("store campaign: %w", err)
	}
	m.mu.Lock()
	m.runs[r.c.ID] = r
	m.mu.Unlock()
	m.log.Info("campaign created", "id", r.c.ID, "target", targetName(r.c), "devices", r.c.Planned,
		"waves", r.c.Waves, "method", r.c.Method)
	m.publishCampaign(r.c)
	m.kick()
	return r.c, nil
}

// join adds ep to the campaign as queued, in its wave.
func (r *campaignRun) join(ep string) *Device {
	d := &Device{Endpoint: ep, Seq: r.c.Joined, Wave: waveOf(&r.c, r.c.Joined), State: DeviceQueued, Updated: time.Now().UTC()}
	r.c.Joined++
	r.devices[ep] = d
	r.order = append(r.order, ep)
	return d
}

// matches applies the endpoint list and the registration
// attribute filters (device type and version need reads: the driver
// checks them when it starts the device).
func matches(s Selector, d *dm.Device) bool {
	reg := d.Registration()
	if len(s.Endpoints) > 0 {
		for _, ep := range s.Endpoints {
			if ep == reg.Endpoint {
				return true
			}
		}
		return false
	}
	for k, pat := range s.Attributes {
		var v string
		switch k {
		case "ep", "endpoint":
			v = reg.Endpoint
		case "lwm2m", "version":
			v = reg.Version
		case "b", "binding":
			v = reg.Binding
		case "queue", "Q":
			v = strconv.FormatBool(reg.Queue)
		case "transport":
			v = reg.Transport
		case "security":
			v = reg.Security
		case "identity":
			v = reg.Identity
		case "sms":
			v = reg.SMS
		default:
			return false
		}
		if ok, _ := path.Match(pat, v); !ok {
			return false
		}
	}
	return true
}

// Campaign returns a campaign and its devices in joining order.
func (m *Engine) Campaign(id string) (Campaign, []Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.runs[id]
	if r == nil {
		return Campaign{}, nil, fmt.Errorf("%w: %q", ErrNoCampaign, id)
	}
	out := make([]Device, 0, len(r.order))
	for _, ep := range r.order {
		out = append(out, *r.devices[ep])
	}
	return r.c, out, nil
}

// List returns all campaigns, newest first.
func (m *Engine) List() []Campaign {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Campaign, 0, len(m.runs))
	for _, r := range m.runs {
		out = append(out, r.c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// Pause stops starting devices; devices already updating finish.
func (m *Engine) Pause(id, reason string) (Campaign, error) {
	return m.setState(id, Paused, reason, Running)
}

// Resume continues a paused campaign.
func (m *Engine) Resume(id string) (Campaign, error) {
	return m.setState(id, Running, "", Paused)
}

// Abort ends a campaign: no device starts any more and the drivers stop;
// queued devices are marked cancelled. A device that is already installing
// finishes on its own; its state stays as last seen.
func (m *Engine) Abort(id, reason string) (Campaign, error) {
	return m.setState(id, Aborted, reason, Running, Paused)
}

func (m *Engine) setState(id, state, reason string, from ...string) (Campaign, error) {
	m.mu.Lock()
	r := m.runs[id]
	if r == nil {
		m.mu.Unlock()
		return Campaign{}, fmt.Errorf("%w: %q", ErrNoCampaign, id)
	}
	ok := false
	for _, f := range from {
		ok = ok || r.c.State == f
	}
	if !ok {
		c := r.c
		m.mu.Unlock()
		if c.State == state {
			return c, nil
		}
		return c, fmt.Errorf("%w: campaign %s is %s", ErrCampaignEnd, id, c.State)
	}
	r.c.State, r.c.Reason, r.c.Updated = state, reason, time.Now().UTC()
	var cancelled []*Device
	if state == Aborted {
		for _, cancel := range r.active {
			cancel()
		}
		for _, ep := range r.order {
			if d := r.devices[ep]; d.State == DeviceQueued {
				d.State, d.Error, d.Updated = DeviceCancelled, "campaign aborted", r.c.Updated
				cancelled = append(cancelled, d)
			}
		}
	}
	c := r.c
	m.mu.Unlock()
	recs := make([]Device, len(cancelled))
	for i, d := range cancelled {
		recs[i] = *d
	}
	err := m.st.PutCampaign(c, recs)
	if err != nil {
		return c, fmt.Errorf("store campaign %s: %w", id, err)
	}
	m.log.Info("campaign "+state, "id", id, "reason", reason)
	m.publishCampaign(c)
	m.kick()
	return c, nil
}

func (m *Engine) saveCampaign(c Campaign) {
	err := m.st.PutCampaign(c, nil)
	if err != nil {
		m.log.Error("store campaign", "id", c.ID, "err", err)
	}
}

// saveDevice persists one device's state; the caller then publishes it.
func (m *Engine) saveDevice(id string, d Device) error {
	err := m.st.PutCampaignDevice(id, d)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNoCampaign, id)
	}
	return err
}

// Retry puts the campaign's failed devices back in the queue (their
// automatic retries counted anew) and runs the campaign again if it had
// completed or paused itself; it returns the campaign and how many devices
// it requeued. An aborted campaign is not retried: make a new one.
func (m *Engine) Retry(id string) (Campaign, int, error) {
	m.mu.Lock()
	r := m.runs[id]
	if r == nil {
		m.mu.Unlock()
		return Campaign{}, 0, fmt.Errorf("%w: %s", ErrNoCampaign, id)
	}
	if r.c.State == Aborted {
		c := r.c
		m.mu.Unlock()
		return c, 0, fmt.Errorf("%w: campaign %s was aborted; create a new one", ErrCampaignEnd, id)
	}
	var devs []Device
	for _, ep := range r.order {
		if d := r.devices[ep]; d.State == DeviceFailed {
			requeue(d, true)
			d.Updated = time.Now().UTC()
			devs = append(devs, *d)
		}
	}
	if len(devs) > 0 && r.c.State != Running {
		r.c.State, r.c.Reason = Running, fmt.Sprintf("retry of %d failed devices", len(devs))
	}
	r.c.Updated = time.Now().UTC()
	c := r.c
	m.mu.Unlock()
	if err := m.st.PutCampaign(c, devs); err != nil {
		return c, 0, fmt.Errorf("store campaign %s: %w", id, err)
	}
	m.log.Info("campaign retry", "id", id, "devices", len(devs))
	for _, d := range devs {
		m.publishDevice(id, d)
	}
	m.publishCampaign(c)
	m.kick()
	return c, len(devs), nil
}

// Summary counts a campaign's devices by state.
type Summary struct {
	Total       int            `json:"total"`
	ByState     map[string]int `json:"byState"`
	Succeeded   int            `json:"succeeded"`
	Failed      int            `json:"failed"`
	Active      int            `json:"active"`
	Queued      int            `json:"queued"`
	Skipped     int            `json:"skipped"`     // another type or version, or already on the target
	Retrying    int            `json:"retrying"`    // failed, tried again at their RetryAt
	BytesSent   int64          `json:"bytesSent"`   // package bytes devices downloaded (succeeded ones)
	BytesImages int64          `json:"bytesImages"` // what full images would have cost them
}

// Summarize counts devices by state.
func Summarize(devs []Device) Summary {
	s := Summary{ByState: map[string]int{}}
	for _, d := range devs {
		s.Total++
		s.ByState[d.State]++
		switch {
		case d.State == DeviceSucceeded:
			s.Succeeded++
			s.BytesSent += int64(d.PackageSize)
			s.BytesImages += int64(d.ImageSize)
		case d.State == DeviceFailed:
			s.Failed++
			if !d.RetryAt.IsZero() {
				s.Retrying++
			}
		case d.State == DeviceSkipped:
			s.Skipped++
		case d.State == DeviceQueued:
			s.Queued++
		case isActive(&d):
			s.Active++
		}
	}
	return s
}

// kick makes the scheduler look now.
func (m *Engine) kick() { m.wake("") }

func (m *Engine) wake(ep string) {
	m.mu.Lock()
	ch := m.wakes[ep]
	if ch == nil {
		ch = make(chan struct{}, 1)
		m.wakes[ep] = ch
	}
	m.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (m *Engine) wakeChan(ep string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.wakes[ep]
	if ch == nil {
		ch = make(chan struct{}, 1)
		m.wakes[ep] = ch
	}
	return ch
}

// eventLoop wakes a device's driver when the device registers, updates its
// registration or notifies, and the scheduler when a device registers (it
// may join a campaign, or be a queue-mode device awake now).
func (m *Engine) eventLoop(evs <-chan events.Event) {
	for {
		select {
		case <-m.stop:
			return
		case e, ok := <-evs:
			if !ok {
				return
			}
			switch e.Type {
			case events.Registration, events.Updated, events.Notification:
				m.wake(e.Endpoint)
				if e.Type != events.Notification {
					m.kick()
				}
			}
		}
	}
}

// schedule is the scheduler loop: every tick, or when kicked.
func (m *Engine) schedule() {
	t := time.NewTicker(m.cfg.Tick)
	defer t.Stop()
	kick := m.wakeChan("")
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		case <-kick:
		}
		if m.cfg.Cluster != nil {
			m.sync()
		}
		m.mu.Lock()
		ids := make([]string, 0, len(m.runs))
		for id := range m.runs {
			ids = append(ids, id)
		}
		m.mu.Unlock()
		sort.Strings(ids)
		for _, id := range ids {
			m.step(id)
		}
	}
}

// step advances one campaign: joins, thresholds, waves, device starts.
func (m *Engine) step(id string) {
	now := time.Now()
	m.mu.Lock()
	r := m.runs[id]
	if r == nil || r.c.State == Aborted || r.c.State == Completed {
		m.mu.Unlock()
		return
	}
	var joined []*Device
	// Devices that registered after the start join a running campaign
	// targeted by filter.
	if r.c.State == Running && len(r.c.Targets.Endpoints) == 0 {
		for _, d := range m.srv.Devices() {
			if _, ok := r.devices[d.Endpoint()]; !ok && matches(r.c.Targets, d) && m.inDomain(r.c, d.Endpoint()) {
				joined = append(joined, r.join(d.Endpoint()))
			}
		}
	}
	// Failed devices whose retry is due go back in the queue.
	var touched []*Device
	if r.c.State == Running {
		for _, ep := range r.order {
			if d := r.devices[ep]; d.State == DeviceFailed && !d.RetryAt.IsZero() && !now.Before(d.RetryAt) {
				requeue(d, false)
				touched = append(touched, d)
			}
		}
	}
	var fails, succ, done, total, inWave, waveSucc, waveDone, active int
	for _, ep := range r.order {
		d := r.devices[ep]
		if d.State == DeviceSkipped || d.State == DeviceCancelled {
			continue
		}
		total++
		if d.State == DeviceFailed {
			fails++
		}
		if d.State == DeviceSucceeded {
			succ++
		}
		if isTerminal(d) {
			done++
		}
		if _, ok := r.active[ep]; ok || isActive(d) {
			active++
		}
		if d.Wave <= r.c.Wave {
			inWave++
			if d.State == DeviceSucceeded {
				waveSucc++
			}
			if isTerminal(d) {
				waveDone++
			}
		}
	}
	changed := len(joined) > 0
	var starts []string
	switch {
	case r.c.State == Running && fails > 0 && inWave > 0 &&
		r.c.ErrorThreshold < 1 && float64(fails) > r.c.ErrorThreshold*float64(inWave):
		r.c.State = Paused
		r.c.Reason = fmt.Sprintf("error threshold: %d of the %d devices in waves 1 to %d failed (over %.0f%%)",
			fails, inWave, r.c.Wave+1, 100*r.c.ErrorThreshold)
		changed = true
	case r.c.State == Running && r.c.Wave < len(r.c.Waves)-1 &&
		(inWave == 0 || float64(waveSucc) >= r.c.SuccessThreshold*float64(inWave)):
		r.c.Wave++
		changed = true
		m.log.Info("campaign wave", "id", r.c.ID, "wave", r.c.Wave, "of", len(r.c.Waves))
	case r.c.State == Running && r.c.Wave < len(r.c.Waves)-1 && inWave > 0 && waveDone == inWave:
		r.c.State = Paused
		r.c.Reason = fmt.Sprintf("success threshold: wave %d ended with %d of %d devices updated (need %.0f%%)",
			r.c.Wave+1, waveSucc, inWave, 100*r.c.SuccessThreshold)
		changed = true
	case r.c.State == Running && r.c.Wave == len(r.c.Waves)-1 && total > 0 && done == total && len(r.active) == 0:
		r.c.State = Completed
		r.c.Reason = fmt.Sprintf("%d of %d devices updated", succ, total)
		changed = true
	}
	// Devices whose driver stopped (restart) resume whatever the window
	// or the pause: they are mid-update. New ones start only when running,
	// inside the window, within the concurrency limit.
	for _, ep := range r.order {
		d := r.devices[ep]
		if _, ok := r.active[ep]; ok || !isActive(d) {
			continue
		}
		if m.cfg.Cluster != nil {
			if dev := m.srv.Device(ep); dev == nil || dev.Session() == nil {
				continue // mid-update at another node, or back at none yet
			}
		}
		if r.c.State == Running || r.c.State == Paused {
			starts = append(starts, ep)
		}
	}
	if r.c.State == Running && WindowOpen(r.c.Window, now) {
		room := r.c.Concurrency - active
		for _, ep := range r.order {
			if room <= 0 {
				break
			}
			d := r.devices[ep]
			if d.State != DeviceQueued || d.Wave > r.c.Wave {
				continue
			}
			if _, ok := r.active[ep]; ok {
				continue
			}
			dev := m.srv.Device(ep)
			if m.cfg.Cluster != nil && (dev == nil || dev.Session() == nil) {
				continue // another node holds it (or none yet): its holder drives it
			}
			if dev == nil {
				// Its turn has come and it is not registered: it fails
				// after the device timeout rather than being waited on
				// forever (an endpoint misspelt, a device never installed).
				if d.Waiting.IsZero() {
					d.Waiting = now.UTC()
					touched = append(touched, d)
				} else if timeout := m.deviceTimeout(r.c); now.Sub(d.Waiting) > timeout {
					d.State = DeviceFailed
					d.Error = fmt.Sprintf("never registered: endpoint %q not seen in %s (check the name, or that the device is on)", ep, timeout)
					d.Updated = now.UTC()
					m.scheduleRetry(r.c, d)
					touched = append(touched, d)
				}
				continue
			}
			if !m.srv.Awake(dev, now) {
				continue // a queue-mode device asleep: when it wakes
			}
			if !d.Waiting.IsZero() {
				d.Waiting = time.Time{}
				touched = append(touched, d)
			}
			if m.busyElsewhere(id, ep) {
				continue // another campaign is updating it: one /5 object, one update at a time
			}
			starts = append(starts, ep)
			room--
		}
	}
	if m.cfg.Cluster != nil && len(starts) > 0 {
		// Claimed outside the lock (a database round trip); what another
		// node holds is dropped for this tick.
		m.mu.Unlock()
		claimed := m.cfg.Cluster.Claim(id, starts)
		m.mu.Lock()
		starts = claimed
		if r.c.State == Aborted || r.c.State == Completed || m.runs[id] != r {
			starts = nil
		}
		for i := 0; i < len(starts); i++ {
			if _, ok := r.active[starts[i]]; ok {
				starts = append(starts[:i], starts[i+1:]...)
				i--
			}
		}
	}
	ctxs := map[string]context.Context{}
	for _, ep := range starts {
		ctx, cancel := context.WithCancel(context.Background())
		r.active[ep] = cancel
		ctxs[ep] = ctx
	}
	c := r.c
	if changed {
		r.c.Updated = now.UTC()
		c = r.c
	}
	saved := make([]Device, len(touched))
	for i, d := range touched {
		saved[i] = *d
	}
	m.mu.Unlock()
	for _, d := range saved {
		if err := m.saveDevice(c.ID, d); err != nil {
			m.log.Error("store campaign device", "campaign", c.ID, "endpoint", d.Endpoint, "err", err)
		}
		m.publishDevice(c.ID, d)
	}
	if changed {
		m.saveCampaign(c)
		for _, d := range joined {
			if err := m.saveDevice(c.ID, *d); err != nil {
				m.log.Error("store campaign device", "campaign", c.ID, "endpoint", d.Endpoint, "err", err)
			}
			m.publishDevice(c.ID, *d)
		}
		m.publishCampaign(c)
		if c.State == Paused {
			m.log.Warn("campaign paused itself", "id", c.ID, "reason", c.Reason)
		}
	}
	for _, ep := range starts {
		m.wg.Add(1)
		go func(ep string, ctx context.Context) {
			defer m.wg.Done()
			m.drive(ctx, c.ID, ep)
			if m.cfg.Cluster != nil {
				m.cfg.Cluster.Release(c.ID, ep)
			}
			m.mu.Lock()
			if r := m.runs[c.ID]; r != nil {
				if cancel := r.active[ep]; cancel != nil {
					cancel()
				}
				delete(r.active, ep)
			}
			m.mu.Unlock()
			m.kick()
		}(ep, ctxs[ep])
	}
}

// sync reads the campaigns and their devices from the shared store (cluster
// mode): campaigns created at other nodes join, and device states other
// nodes wrote replace ours, apart from the devices this node drives now.
// An abort made at another node stops this node's drivers.
func (m *Engine) sync() {
	cs, err := m.st.Campaigns()
	if err != nil {
		m.log.Warn("campaigns: read the shared store", "err", err)
		return
	}
	for _, c := range cs {
		if c.State == Completed || c.State == Aborted {
			m.mu.Lock()
			r := m.runs[c.ID]
			known := r != nil && r.c.State == c.State && len(r.active) == 0
			m.mu.Unlock()
			if known {
				continue // ended, and ended here too: nothing changes any more
			}
		}
		devs, err := m.st.CampaignDevices(c.ID)
		if err != nil {
			m.log.Warn("campaigns: read the shared store", "campaign", c.ID, "err", err)
			continue
		}
		m.mu.Lock()
		r := m.runs[c.ID]
		if r == nil {
			r = &campaignRun{devices: map[string]*Device{}, active: map[string]context.CancelFunc{}}
			m.runs[c.ID] = r
		}
		r.c = c
		order := r.order[:0]
		for i := range devs {
			d := devs[i]
			if _, mine := r.active[d.Endpoint]; mine && r.devices[d.Endpoint] != nil {
				order = append(order, d.Endpoint)
				continue
			}
			r.devices[d.Endpoint] = &d
			order = append(order, d.Endpoint)
		}
		r.order = order
		sort.Slice(r.order, func(i, j int) bool { return r.devices[r.order[i]].Seq < r.devices[r.order[j]].Seq })
		if c.State == Aborted {
			for _, cancel := range r.active {
				cancel()
			}
		}
		m.mu.Unlock()
	}
}

// busyElsewhere reports whether a campaign other than id is driving ep.
// m.mu is held.
func (m *Engine) busyElsewhere(id, ep string) bool {
	for oid, r := range m.runs {
		if oid == id {
			continue
		}
		if _, ok := r.active[ep]; ok {
			return true
		}
		if d := r.devices[ep]; d != nil && isActive(d) && r.c.State != Aborted {
			return true
		}
	}
	return false
}

// inDomain reports whether ep is a device of c's domain.
func (m *Engine) inDomain(c Campaign, ep string) bool {
	if m.cfg.DomainOf == nil {
		return true
	}
	return m.cfg.DomainOf(ep) == c.Domain
}

func (m *Engine) publishCampaign(c Campaign) {
	_, devs, _ := m.Campaign(c.ID)
	m.srv.Events().Publish(events.Event{Type: events.Campaign, Data: map[string]any{
		"campaign": c.ID, "state": c.State, "wave": c.Wave, "waves": len(c.Waves), "reason": c.Reason, "summary": Summarize(devs),
	}})
}

func (m *Engine) publishDevice(id string, d Device) {
	m.srv.Events().Publish(events.Event{Type: events.Campaign, Endpoint: d.Endpoint, Data: map[string]any{
		"campaign": id, "device": d,
	}})
}

// Status is a campaign with its device counts (and, for one campaign, its
// devices): what the API answers.
type Status struct {
	Campaign
	Summary Summary  `json:"summary"`
	Devices []Device `json:"devices,omitempty"`
}

// Status returns the status of campaign id, with its devices if asked.
func (m *Engine) Status(id string, devices bool) Status {
	c, devs, _ := m.Campaign(id)
	st := Status{Campaign: c, Summary: Summarize(devs)}
	if devices {
		st.Devices = devs
	}
	return st
}
