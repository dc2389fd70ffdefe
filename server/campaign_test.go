package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/servertest"
	"github.com/fotastack/fota/server/store"
)

// fwDevice is an LwM2M device written with go-coap for the campaign tests:
// Device object /3 (firmware version /3/0/3, device type /3/0/17) and a
// Firmware Update object /5 that takes a pushed package (/5/0/0) or pulls
// one from a Package URI (/5/0/1) over its own DTLS session, verifies and
// applies it with the delta package's Ed25519 key on Update (/5/0/2), then
// "reboots": a new DTLS session and a new Register with the new version.
type fwDevice struct {
	t   *testing.T
	ep  string
	typ string
	pub ed25519.PublicKey
	key []byte

	mu       sync.Mutex
	addr     net.Addr // the server's DTLS address (changes when the test restarts the server)
	cc       *udpClient.Conn
	image    []byte
	version  string
	state    int // /5/0/3
	result   int // /5/0/5
	pkg      []byte
	failWith int           // Update fails with this result (0: succeeds)
	holdExec time.Duration // how long Updating lasts before the reboot
	offers   int           // packages offered (pushes and URIs written)
	execs    int           // Update executions
	reads    int           // requests of any kind
	queue    bool          // registers in queue mode (Q)
	location string        // registration path, /rd/{id}
	wg       sync.WaitGroup
	closed   bool
}

func newFwDevice(t *testing.T, srv *servertest.Server, ep, typ, version string, image []byte, pub ed25519.PublicKey) *fwDevice {
	d := &fwDevice{t: t, ep: ep, typ: typ, pub: pub, key: []byte("campaign-psk-key"), addr: srv.CoAPSAddr(),
		image: image, version: version}
	srv.AddPSK(ep, ep+"-id", d.key)
	if err := d.connect(); err != nil {
		t.Fatalf("%s: %v", ep, err)
	}
	t.Cleanup(d.close)
	return d
}

func (d *fwDevice) close() {
	d.mu.Lock()
	d.closed = true
	cc := d.cc
	d.mu.Unlock()
	if cc != nil {
		_ = cc.Close()
	}
	d.wg.Wait()
}

// connect makes a DTLS session to the server and registers.
func (d *fwDevice) connect() error {
	d.mu.Lock()
	addr, old := d.addr, d.cc
	d.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	conn, err := pionPSK(pc, addr, d.ep+"-id", d.key)
	if err != nil {
		pc.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return err
	}
	cc := coapdtls.Client(conn, options.WithCloseSocket(), options.WithMux(mux.HandlerFunc(d.serve)),
		options.WithBlockwise(true, blockwise.SZX1024, time.Minute))
	q := func(s string) message.Option { return message.Option{ID: message.URIQuery, Value: []byte(s)} }
	qs := []message.Option{q("ep=" + d.ep), q("lt=300"), q("lwm2m=1.1"), q("b=U")}
	d.mu.Lock()
	if d.queue {
		qs = append(qs, q("Q"))
	}
	d.mu.Unlock()
	r, err := cc.Post(ctx, "/rd", message.AppLinkFormat, bytes.NewReader([]byte("</3/0>,</5/0>")), qs...)
	if err != nil {
		cc.Close()
		return err
	}
	if r.Code() != codes.Created {
		cc.Close()
		return fmt.Errorf("register: %v", r.Code())
	}
	loc, _ := r.Options().LocationPath()
	d.mu.Lock()
	d.cc, d.location = cc, loc
	d.mu.Unlock()
	return nil
}

// wake sends a registration Update: a queue-mode device is reachable for
// a while after it (LwM2M Core 6.5).
func (d *fwDevice) wake() error {
	d.mu.Lock()
	cc, loc := d.cc, d.location
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := cc.Post(ctx, "/"+strings.Trim(loc, "/"), message.TextPlain, nil)
	if err != nil {
		return err
	}
	if r.Code() != codes.Changed {
		return fmt.Errorf("update: %v", r.Code())
	}
	return nil
}

func (d *fwDevice) requests() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reads
}

func (d *fwDevice) setAddr(a net.Addr) {
	d.mu.Lock()
	d.addr = a
	d.mu.Unlock()
}

func (d *fwDevice) counts() (offers, execs int, version string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.offers, d.execs, d.version
}

func (d *fwDevice) serve(w mux.ResponseWriter, r *mux.Message) {
	p, _ := r.Options().Path()
	p = "/" + strings.Trim(p, "/")
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reads++
	text := func(s string) {
		_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte(s)))
		if _, err := r.Options().Observe(); err == nil {
			w.Message().SetObserve(2) // observation accepted; the server polls anyway
		}
	}
	switch {
	case r.Code() == codes.GET && p == "/3/0/3":
		text(d.version)
	case r.Code() == codes.GET && p == "/3/0/17":
		text(d.typ)
	case r.Code() == codes.GET && p == "/5/0/3":
		text(strconv.Itoa(d.state))
	case r.Code() == codes.GET && p == "/5/0/5":
		text(strconv.Itoa(d.result))
	case r.Code() == codes.PUT && p == "/5/0/0":
		body, _ := io.ReadAll(r.Body())
		d.offers++
		d.pkg, d.state, d.result = body, 2, 0
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case (r.Code() == codes.PUT || r.Code() == codes.POST) && p == "/5/0/1":
		body, _ := io.ReadAll(r.Body())
		d.offers++
		u, err := url.Parse(string(body))
		if err != nil || u.Scheme != "coaps" {
			d.result = 7 // invalid URI
			_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
			return
		}
		d.state, d.result = 1, 0
		cc := d.cc
		d.wg.Add(1)
		go d.pull(cc, u.Path) // not inside the handler: its answer goes out when it returns
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case r.Code() == codes.POST && p == "/5/0/2":
		if d.state != 2 {
			_ = w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
			return
		}
		d.execs++
		d.state = 3
		d.wg.Add(1)
		go d.update()
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	default:
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
	}
}

func (d *fwDevice) pull(cc *udpClient.Conn, path string) {
	defer d.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, path)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil || resp.Code() != codes.Content {
		d.t.Logf("%s: pull %s: %v %v", d.ep, path, err, resp)
		d.state, d.result = 0, 4 // connection lost during download
		return
	}
	body, _ := io.ReadAll(resp.Body())
	d.pkg, d.state = body, 2
}

// update applies the package (checking its signature and base) and reboots.
func (d *fwDevice) update() {
	defer d.wg.Done()
	d.mu.Lock()
	hold, fail, pkg, image := d.holdExec, d.failWith, d.pkg, d.image
	d.mu.Unlock()
	time.Sleep(hold)
	var out []byte
	var err error
	if h, perr := delta.Parse(pkg); perr == nil && h.OldSize == 0 {
		out, err = delta.Apply(nil, pkg, d.pub)
	} else {
		out, err = delta.Apply(image, pkg, d.pub)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	if fail != 0 || err != nil {
		d.t.Logf("%s: update: %v (pkg %d bytes)", d.ep, err, len(pkg))
		if fail == 0 {
			fail = 5 // integrity check failure
		}
		d.state, d.result, d.pkg = 0, fail, nil
		d.mu.Unlock()
		return
	}
	h, _ := delta.Parse(pkg)
	d.image, d.version, d.state, d.result, d.pkg = out, h.Version, 0, 1, nil
	d.mu.Unlock()
	// Reboot: a new session and a new registration, retried while the
	// server is away.
	for i := 0; i < 100; i++ {
		d.mu.Lock()
		closed := d.closed
		d.mu.Unlock()
		if closed {
			return
		}
		if err := d.connect(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.t.Errorf("%s: could not re-register after the update", d.ep)
}

type campaignEnv struct {
	srv  *servertest.Server
	fw   *firmware.Repository
	cm   *campaign.Engine
	v1   []byte
	v2   []byte
	img2 firmware.Image
}

func startCampaigns(t *testing.T, db string, mod ...func(*server.Config)) *campaignEnv {
	t.Helper()
	fast := func(c *server.Config) {
		c.Campaign = campaign.Config{Tick: 20 * time.Millisecond, Poll: 50 * time.Millisecond, DeviceTimeout: 30 * time.Second}
	}
	srv, fw := startFirmware(t, db, append([]func(*server.Config){fast}, mod...)...)
	return &campaignEnv{srv: srv, fw: fw, cm: srv.Campaigns}
}

func (e *campaignEnv) addImages(t *testing.T) {
	t.Helper()
	e.v1, e.v2 = testImages(24<<10, 7)
	if _, err := e.fw.AddImage("sensor", "1.0", e.v1, false); err != nil {
		t.Fatal(err)
	}
	img, err := e.fw.AddImage("sensor", "2.0", e.v2, false)
	if err != nil {
		t.Fatal(err)
	}
	e.img2 = img
}

// waitCampaign polls until cond holds for the campaign.
func waitCampaign(t *testing.T, cm *campaign.Engine, id string, what string, cond func(campaign.Campaign, []campaign.Device) bool) (campaign.Campaign, []campaign.Device) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, devs, err := cm.Campaign(id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(c, devs) {
			return c, devs
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign never reached %s: %+v\n%+v", what, c, devs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pull over DTLS in three waves: every device ends on v2 by a delta
// package made once, and no device of a wave starts before the previous
// waves reached the success threshold.
func TestCampaignPullWaves(t *testing.T) {
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	e.addImages(t)
	var devs []*fwDevice
	var eps []string
	for i := 0; i < 10; i++ {
		ep := fmt.Sprintf("pull-%02d", i)
		devs = append(devs, newFwDevice(t, e.srv, ep, "sensor", "1.0", e.v1, e.fw.PublicKey()))
		eps = append(eps, ep)
	}
	c, err := e.cm.Create(campaign.Campaign{Image: e.img2.ID, Targets: campaign.Selector{Endpoints: eps},
		Method: campaign.DeliveryPull, Waves: []float64{10, 50, 100}, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	c, states := waitCampaign(t, e.cm, c.ID, "completed", func(c campaign.Campaign, _ []campaign.Device) bool {
		return c.State == campaign.Completed
	})
	sum := campaign.Summarize(states)
	if sum.Succeeded != 10 {
		t.Fatalf("summary %+v\n%+v", sum, states)
	}
	waveSize := map[int]int{}
	lastDone := map[int]time.Time{}
	for _, s := range states {
		waveSize[s.Wave]++
		if s.Updated.After(lastDone[s.Wave]) {
			lastDone[s.Wave] = s.Updated
		}
		if s.PackageKind != firmware.PackageDelta || s.Result != 1 || s.Progress != 100 {
			t.Fatalf("device %+v", s)
		}
	}
	if waveSize[0] != 1 || waveSize[1] != 4 || waveSize[2] != 5 {
		t.Fatalf("wave sizes %v", waveSize)
	}
	for _, s := range states {
		if s.Wave > 0 && s.Started.Before(lastDone[s.Wave-1]) {
			// With threshold 1, the next wave waits for every device of
			// the waves before.
			t.Fatalf("%s of wave %d started %v, before wave %d ended %v", s.Endpoint, s.Wave, s.Started, s.Wave-1, lastDone[s.Wave-1])
		}
	}
	for _, d := range devs {
		offers, execs, v := d.counts()
		if v != "2.0" || offers != 1 || execs != 1 {
			t.Fatalf("%s: version %s, %d offers, %d updates", d.ep, v, offers, execs)
		}
	}
	if e.fw.Builds() != 1 {
		t.Fatalf("%d packages made for one base version", e.fw.Builds())
	}
	if sum.BytesSent >= sum.BytesImages/2 {
		t.Fatalf("sent %d bytes for %d of images", sum.BytesSent, sum.BytesImages)
	}
}

// Push (Block1 writes to /5/0/0) to devices chosen by a registration
// attribute filter: a device registering after the start joins the running
// campaign, one of another device type is skipped, one not matching the
// filter is left alone.
func TestCampaignPushFilterLateJoin(t *testing.T) {
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	e.addImages(t)
	pub := e.fw.PublicKey()
	a := newFwDevice(t, e.srv, "push-a", "sensor", "1.0", e.v1, pub)
	b := newFwDevice(t, e.srv, "push-b", "sensor", "1.0", e.v1, pub)
	gw := newFwDevice(t, e.srv, "push-gw", "gateway", "1.0", e.v1, pub)
	other := newFwDevice(t, e.srv, "other-1", "sensor", "1.0", e.v1, pub)
	c, err := e.cm.Create(campaign.Campaign{DeviceType: "sensor", Version: "2.0",
		Targets: campaign.Selector{Attributes: map[string]string{"ep": "push-*", "transport": "coaps"}},
		Method:  campaign.DeliveryPush, Concurrency: 2, ErrorThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Planned != 3 {
		t.Fatalf("planned %d devices, want 3", c.Planned)
	}
	late := newFwDevice(t, e.srv, "push-late", "sensor", "1.0", e.v1, pub)
	_, states := waitCampaign(t, e.cm, c.ID, "completed", func(c campaign.Campaign, _ []campaign.Device) bool {
		return c.State == campaign.Completed
	})
	got := map[string]campaign.Device{}
	for _, s := range states {
		got[s.Endpoint] = s
	}
	for _, d := range []*fwDevice{a, b, late} {
		offers, execs, v := d.counts()
		if v != "2.0" || offers != 1 || execs != 1 || got[d.ep].State != campaign.DeviceSucceeded {
			t.Fatalf("%s: version %s, %d offers, %d updates, %+v", d.ep, v, offers, execs, got[d.ep])
		}
	}
	if got["push-gw"].State != campaign.DeviceSkipped || !strings.Contains(got["push-gw"].Error, "gateway") {
		t.Fatalf("gateway: %+v", got["push-gw"])
	}
	if _, ok := got["other-1"]; ok {
		t.Fatal("a device outside the filter joined")
	}
	for _, d := range []*fwDevice{gw, other} {
		if offers, _, v := d.counts(); offers != 0 || v != "1.0" {
			t.Fatalf("%s was offered a package", d.ep)
		}
	}
}

// Failures above the error threshold pause the campaign on its own; the
// devices not started stay queued; abort cancels them. Driven through the
// HTTP API, with the SSE stream reporting the pause.
func TestCampaignAutoPauseAndAbortAPI(t *testing.T) {
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	e.addImages(t)
	var eps []string
	for i := 0; i < 6; i++ {
		ep := fmt.Sprintf("bad-%d", i)
		d := newFwDevice(t, e.srv, ep, "sensor", "1.0", e.v1, e.fw.PublicKey())
		if i < 2 {
			d.failWith = 8 // firmware update failed
		}
		eps = append(eps, ep)
	}
	var st campaign.Status
	body := map[string]any{"deviceType": "sensor", "version": "2.0", "targets": map[string]any{"endpoints": eps},
		"method": "pull", "concurrency": 2, "errorThreshold": 0.3}
	if code := e.srv.API("POST", "/api/campaigns", body, &st); code != 201 {
		t.Fatalf("create: %d %+v", code, st)
	}
	if code := e.srv.API("POST", "/api/campaigns", map[string]any{"deviceType": "sensor", "version": "9"}, nil); code != 400 {
		t.Fatalf("campaign for a missing image: %d", code)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/campaigns/"+st.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+servertest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sawPause := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "data: ") && strings.Contains(line, `"state":"paused"`) {
				sawPause <- line
				return
			}
		}
	}()
	c, _ := waitCampaign(t, e.cm, st.ID, "paused", func(c campaign.Campaign, _ []campaign.Device) bool {
		return c.State == campaign.Paused
	})
	if !strings.Contains(c.Reason, "error threshold") {
		t.Fatalf("reason %q", c.Reason)
	}
	select {
	case line := <-sawPause:
		if !strings.Contains(line, "error threshold") {
			t.Fatalf("sse: %s", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no paused status on the event stream")
	}
	// A device the scheduler took just before the pause may still show
	// queued while its driver reads its version: let it leave that state.
	time.Sleep(200 * time.Millisecond)
	_, states, _ := e.cm.Campaign(st.ID)
	sum := campaign.Summarize(states)
	if sum.Failed < 2 || sum.Queued < 2 {
		t.Fatalf("at pause: %+v", sum)
	}
	for _, s := range states {
		if s.State == campaign.DeviceFailed && s.Result != 8 {
			t.Fatalf("failed device without its result code: %+v", s)
		}
	}
	time.Sleep(300 * time.Millisecond) // paused: nothing starts
	_, after, _ := e.cm.Campaign(st.ID)
	if q := campaign.Summarize(after).Queued; q != sum.Queued {
		t.Fatalf("paused campaign started devices: %d queued, was %d", q, sum.Queued)
	}
	if code := e.srv.API("POST", "/api/campaigns/"+st.ID+"/abort", nil, &st); code != 200 || st.State != campaign.Aborted {
		t.Fatalf("abort: %d %+v", code, st)
	}
	if code := e.srv.API("POST", "/api/campaigns/"+st.ID+"/resume", nil, nil); code != 409 {
		t.Fatalf("resume after abort: %d", code)
	}
	var full campaign.Status
	e.srv.API("GET", "/api/campaigns/"+st.ID, nil, &full)
	if full.Summary.ByState[campaign.DeviceCancelled] != sum.Queued || len(full.Devices) != 6 {
		t.Fatalf("after abort: %+v", full.Summary)
	}
	if code := e.srv.API("GET", "/api/campaigns/nope", nil, nil); code != 404 {
		t.Fatalf("unknown campaign: %d", code)
	}
}

// A server restart mid-campaign: a device that had finished is not touched
// again, one that was installing is not executed again and succeeds when it
// registers running v2, the queued ones are updated after the restart.
func TestCampaignRestartResumes(t *testing.T) {
	db := filepath.Join(t.TempDir(), "fota.db")
	e := startCampaigns(t, db)
	e.addImages(t)
	pub := e.fw.PublicKey()
	var devs []*fwDevice
	var eps []string
	for i := 0; i < 4; i++ {
		ep := fmt.Sprintf("rs-%d", i)
		d := newFwDevice(t, e.srv, ep, "sensor", "1.0", e.v1, pub)
		if i == 1 {
			d.holdExec = 1500 * time.Millisecond
		}
		devs, eps = append(devs, d), append(eps, ep)
	}
	c, err := e.cm.Create(campaign.Campaign{Image: e.img2.ID, Targets: campaign.Selector{Endpoints: eps}, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitCampaign(t, e.cm, c.ID, "rs-1 updating", func(_ campaign.Campaign, ds []campaign.Device) bool {
		return ds[0].State == campaign.DeviceSucceeded && ds[1].State == campaign.DeviceUpdating
	})
	e.cm.Close()
	e.srv.Stop()

	e2 := startCampaigns(t, db)
	for _, d := range devs {
		d.setAddr(e2.srv.CoAPSAddr())
	}
	// The devices whose sessions died with the server register again, as
	// a client does when its next request fails; rs-1 does on its reboot.
	for _, i := range []int{0, 2, 3} {
		if err := devs[i].connect(); err != nil {
			t.Fatal(err)
		}
	}
	_, states := waitCampaign(t, e2.cm, c.ID, "completed", func(c campaign.Campaign, _ []campaign.Device) bool {
		return c.State == campaign.Completed
	})
	for i, d := range devs {
		offers, execs, v := d.counts()
		if v != "2.0" || offers != 1 || execs != 1 || states[i].State != campaign.DeviceSucceeded {
			t.Fatalf("%s: version %s, %d offers, %d updates; %+v", d.ep, v, offers, execs, states[i])
		}
	}
}

// A queue-mode device asleep is not sent anything; it is updated once it
// wakes (LwM2M Core 6.5), while it keeps checking in.
func TestCampaignQueueModeDevice(t *testing.T) {
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"), func(c *server.Config) { c.QueueAwake = 300 * time.Millisecond })
	e.addImages(t)
	d := newFwDeviceQueue(t, e, "sleepy")
	time.Sleep(400 * time.Millisecond) // asleep now
	c, err := e.cm.Create(campaign.Campaign{Image: e.img2.ID, Targets: campaign.Selector{Endpoints: []string{"sleepy"}}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := d.requests(); n != 0 {
		t.Fatalf("%d requests sent to a sleeping device", n)
	}
	if _, devs, _ := e.cm.Campaign(c.ID); devs[0].State != campaign.DeviceQueued {
		t.Fatalf("sleeping device: %+v", devs[0])
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // awake: an Update now and then, as its application runs
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				_ = d.wake()
			}
		}
	}()
	_ = d.wake()
	waitCampaign(t, e.cm, c.ID, "completed", func(c campaign.Campaign, _ []campaign.Device) bool {
		return c.State == campaign.Completed
	})
	close(stop)
	<-done
	if offers, execs, v := d.counts(); v != "2.0" || offers != 1 || execs != 1 {
		t.Fatalf("version %s, %d offers, %d updates", v, offers, execs)
	}
}

func newFwDeviceQueue(t *testing.T, e *campaignEnv, ep string) *fwDevice {
	d := &fwDevice{t: t, ep: ep, typ: "sensor", pub: e.fw.PublicKey(), key: []byte("campaign-psk-key"), addr: e.srv.CoAPSAddr(),
		image: e.v1, version: "1.0", queue: true}
	e.srv.AddPSK(ep, ep+"-id", d.key)
	if err := d.connect(); err != nil {
		t.Fatalf("%s: %v", ep, err)
	}
	t.Cleanup(d.close)
	return d
}

// Outside the maintenance window no device starts.
func TestCampaignMaintenanceWindow(t *testing.T) {
	w := campaign.Window{Start: "22:00", End: "04:00"}
	for _, c := range []struct {
		at   string
		open bool
	}{{"23:30", true}, {"03:59", true}, {"04:00", false}, {"12:00", false}, {"22:00", true}} {
		at, _ := time.Parse("15:04", c.at)
		if campaign.WindowOpen(w, at) != c.open {
			t.Errorf("window %v at %s: open=%v", w, c.at, !c.open)
		}
	}
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	e.addImages(t)
	d := newFwDevice(t, e.srv, "win-1", "sensor", "1.0", e.v1, e.fw.PublicKey())
	now := time.Now().UTC()
	closed := campaign.Window{Start: now.Add(2 * time.Hour).Format("15:04"), End: now.Add(3 * time.Hour).Format("15:04")}
	c, err := e.cm.Create(campaign.Campaign{Image: e.img2.ID, Targets: campaign.Selector{Endpoints: []string{"win-1"}}, Window: closed})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, devs, _ := e.cm.Campaign(c.ID); devs[0].State != campaign.DeviceQueued || d.requests() != 0 {
		t.Fatalf("started outside the window: %+v", devs[0])
	}
	if _, err := e.cm.Create(campaign.Campaign{Image: e.img2.ID, Window: campaign.Window{Start: "25:00", End: "01:00"}}); err == nil {
		t.Fatal("bad window accepted")
	}
}

// Issue 14: a device that stops answering and an endpoint that never
// registered both fail after the campaign's device timeout instead of being
// waited on forever; a second campaign of the same image and devices is
// refused while the first runs; the operator's retry runs the failed
// devices again and the one that came back is updated.
func TestCampaignUnreachableDevicesFailThenRetry(t *testing.T) {
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"), func(c *server.Config) { c.RequestTimeout = 300 * time.Millisecond })
	e.addImages(t)
	down := newFwDevice(t, e.srv, "down-1", "sensor", "1.0", e.v1, e.fw.PublicKey())
	down.close() // gone without de-registering: its registration stays
	def := campaign.Campaign{Image: e.img2.ID, Targets: campaign.Selector{Endpoints: []string{"down-1", "never-1"}},
		DeviceTimeout: "1s", ErrorThreshold: 1}
	c, err := e.cm.Create(def)
	if err != nil {
		t.Fatal(err)
	}
	var dup map[string]any
	if code := e.srv.API("POST", "/api/campaigns", def, &dup); code != http.StatusConflict {
		t.Fatalf("a duplicate campaign: %d %v, want 409", code, dup)
	}
	c, states := waitCampaign(t, e.cm, c.ID, "both devices failed", func(c campaign.Campaign, devs []campaign.Device) bool {
		return c.State == campaign.Completed
	})
	errs := map[string]string{}
	for _, d := range states {
		if d.State != campaign.DeviceFailed {
			t.Fatalf("device %+v, want failed", d)
		}
		errs[d.Endpoint] = d.Error
	}
	if !strings.Contains(errs["never-1"], "never registered") || !strings.Contains(errs["down-1"], "not started after 1s") {
		t.Fatalf("errors %q", errs)
	}
	if s := campaign.Summarize(states); s.Failed != 2 || s.Skipped != 0 || s.Succeeded != 0 {
		t.Fatalf("summary %+v", s)
	}
	newFwDevice(t, e.srv, "down-1", "sensor", "1.0", e.v1, e.fw.PublicKey()) // it comes back
	var st campaign.Status
	if code := e.srv.API("POST", "/api/campaigns/"+c.ID+"/retry", nil, &st); code != http.StatusOK || st.State != campaign.Running || st.Summary.Queued != 2 {
		t.Fatalf("retry: %d %+v", code, st)
	}
	c, states = waitCampaign(t, e.cm, c.ID, "retry ended", func(c campaign.Campaign, devs []campaign.Device) bool {
		return c.State == campaign.Completed
	})
	for _, d := range states {
		want := map[string]string{"down-1": campaign.DeviceSucceeded, "never-1": campaign.DeviceFailed}[d.Endpoint]
		if d.State != want {
			t.Fatalf("after retry %s is %s (%s), want %s", d.Endpoint, d.State, d.Error, want)
		}
	}
}

// Automatic retries: a device whose update fails is tried again after the
// backoff, up to the limit, and then stays failed.
func TestCampaignAutomaticRetries(t *testing.T) {
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	e.addImages(t)
	d := newFwDevice(t, e.srv, "flaky-1", "sensor", "1.0", e.v1, e.fw.PublicKey())
	d.mu.Lock()
	d.failWith = 8 // integrity check failure, LwM2M Core E.6
	d.mu.Unlock()
	c, err := e.cm.Create(campaign.Campaign{Image: e.img2.ID, Targets: campaign.Selector{Endpoints: []string{"flaky-1"}},
		Retries: 2, RetryBackoff: "1s", ErrorThreshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, states := waitCampaign(t, e.cm, c.ID, "retries used up", func(c campaign.Campaign, _ []campaign.Device) bool {
		return c.State == campaign.Completed
	})
	if s := states[0]; s.State != campaign.DeviceFailed || s.Attempts != 2 || s.Result != 8 {
		t.Fatalf("device %+v, want failed after 2 retries with result 8", s)
	}
	if _, execs, _ := d.counts(); execs != 3 {
		t.Fatalf("%d updates executed, want 3 (the first try and 2 retries)", execs)
	}
}

// Issue 14: every device keeps a history (registration, each campaign
// state with its result) readable through the API, and every API call that
// changes something is in the audit trail with who, what and how it ended.
func TestDeviceHistoryAndAuditTrail(t *testing.T) {
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	e.addImages(t)
	newFwDevice(t, e.srv, "hist-1", "sensor", "1.0", e.v1, e.fw.PublicKey())
	var st campaign.Status
	def := campaign.Campaign{Image: e.img2.ID, Targets: campaign.Selector{Endpoints: []string{"hist-1"}}}
	if code := e.srv.API("POST", "/api/campaigns", def, &st); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	waitCampaign(t, e.cm, st.ID, "completed", func(c campaign.Campaign, _ []campaign.Device) bool { return c.State == campaign.Completed })
	var h []store.HistoryEntry
	waitFor(t, "history written", func() bool {
		e.srv.API("GET", "/api/clients/hist-1/history", nil, &h)
		return len(h) > 0 && h[len(h)-1].State == campaign.DeviceSucceeded
	})
	var kinds, states []string
	for _, x := range h {
		kinds = append(kinds, x.Kind)
		if x.Kind == "campaign" {
			states = append(states, x.State)
			if x.Campaign != st.ID || x.Endpoint != "hist-1" || x.Time.IsZero() || x.Detail == "" {
				t.Fatalf("entry %+v", x)
			}
		}
	}
	// "updating" is recorded only when the Execute's answer arrives before
	// the device's new registration; a device that reboots at once (the
	// client no longer de-registers first) may skip it.
	if got := strings.Join(states, ","); kinds[0] != "registered" ||
		(got != "downloading,downloaded,updating,succeeded" && got != "downloading,downloaded,succeeded") {
		t.Fatalf("history kinds %v, campaign states %v:\n%+v", kinds, states, h)
	}
	if last := h[len(h)-1]; last.Result != 1 {
		t.Fatalf("the success carries no result 1: %+v", last)
	}
	// The audit trail: the creation, and a refused call without the token.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/campaigns", strings.NewReader("{}"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST without token: %v %v", resp, err)
	}
	var audit []store.AuditEntry
	if code := e.srv.API("GET", "/api/audit", nil, &audit); code != http.StatusOK || len(audit) != 2 {
		t.Fatalf("audit: %d %+v", code, audit)
	}
	if a := audit[0]; a.Action != "POST /api/campaigns" || a.Status != http.StatusCreated || a.Actor != "api-token" {
		t.Fatalf("audit of the creation %+v", a)
	}
	if a := audit[1]; a.Status != http.StatusUnauthorized || a.Actor != "unauthenticated" {
		t.Fatalf("audit of the refused call %+v", a)
	}
}
