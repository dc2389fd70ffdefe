package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/dm"
	fwrepo "github.com/fotastack/fota/server/firmware"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/firmware"
	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/store/bolt"
)

func init() {
	register("demo", "the whole job on loopback: bootstrap, register, delta campaign in two waves, in-place install", runDemo)
}

// demoOptions is what `fota demo` runs.
type demoOptions struct {
	Devices     int
	Mode        string    // campaign.DeliveryPull or campaign.DeliveryPush
	Waves       []float64 // cumulative percentages
	Concurrency int
	Firmware    demoFirmware
	Keep        bool      // keep the temp directory
	Out         io.Writer // progress, table and summary
	Live        bool      // progress bars on Out (else one line per wave)
	Log         *slog.Logger
}

// demoResult is what a demo measured.
type demoResult struct {
	Dir          string // the temp directory (gone unless Keep)
	Total        int
	Updated      int // devices that re-registered running v2 (read back from /3/0/3)
	Failed       int
	BytesSent    int64 // package bytes the succeeded devices downloaded
	BytesFull    int64 // Total × len(v2): what full images would have cost
	PackageSize  int   // the delta package of v1 → v2
	PackageKind  string
	WaveTimes    []time.Duration
	SetupTime    time.Duration // servers up, devices bootstrapped and registered
	CampaignTime time.Duration
	TotalTime    time.Duration
}

func runDemo(args []string) error {
	fs := newFlags("demo", "", "The whole job on loopback: DM and bootstrap servers, firmware v1 and v2 uploaded, devices on simulated flash bootstrapped and registered, a delta campaign in waves, installed in place.",
		"fota demo", "fota demo --devices 100 --waves 10,50,100 --mode push")
	n := fs.Int("devices", 20, "number of simulated devices")
	mode := fs.String("mode", campaign.DeliveryPull, "delivery: pull (device fetches the Package URI over CoAPS, Block2) or push (server writes /5/0/0, Block1)")
	waves := fs.String("waves", "20,100", "cumulative wave sizes in percent")
	conc := fs.Int("concurrency", 10, "devices updating at once")
	fwDir := fs.String("firmware-dir", "", "directory of firmware pairs (default $FOTA_FIRMWARE_DIR, else ../shared/firmware)")
	pair := fs.String("pair", "", "firmware pair (folder with old.bin, new.bin; default "+defaultDemoPair+" or the smallest)")
	generate := fs.Int("generate", 0, "use a generated synthetic pair of about this many bytes instead of real firmware")
	keep := fs.Bool("keep", false, "keep the temp directory (bbolt file, flash files, device state)")
	timeout := fs.Duration("timeout", 200*time.Second, "give up (exit 1) after this long")
	verbose := fs.Bool("v", false, "log servers and devices to stderr")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *n < 1 || *n > 1000 {
		return &exitError{2, fmt.Errorf("--devices %d: want 1..1000", *n)}
	}
	if *mode != campaign.DeliveryPull && *mode != campaign.DeliveryPush {
		return &exitError{2, fmt.Errorf("--mode %q: want pull or push", *mode)}
	}
	var ws []float64
	for _, w := range splitList(*waves) { // cmd/fota/campaign.go
		f, err := strconv.ParseFloat(strings.TrimSuffix(w, "%"), 64)
		if err != nil {
			return &exitError{2, fmt.Errorf("--waves %q: %v", w, err)}
		}
		ws = append(ws, f)
	}
	// Progress bars redraw a line with \r: only on a terminal; a log
	// file gets a line per wave.
	live := false
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		live = true
	}
	opts := demoOptions{Devices: *n, Mode: *mode, Waves: ws, Concurrency: *conc, Keep: *keep, Out: os.Stdout, Live: live}
	if *generate > 0 {
		opts.Firmware = generateDemoFirmware(*generate, 1)
	} else {
		fw, ok, err := loadDemoFirmware(firmwareDirCandidates(*fwDir), *pair)
		if err != nil {
			return &exitError{2, err}
		}
		if !ok {
			fw = generateDemoFirmware(160<<10, 1)
			fw.Source += "; no ../shared/firmware found (set FOTA_FIRMWARE_DIR to use real firmware)"
		}
		opts.Firmware = fw
	}
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if *verbose {
		opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := runDemoJob(ctx, opts)
	if err != nil {
		return err
	}
	printDemoResult(opts.Out, opts, res)
	if res.Updated != res.Total {
		return &exitError{1, fmt.Errorf("%d of %d devices did not end on v2", res.Total-res.Updated, res.Total)}
	}
	return nil
}

// demoDevice is one simulated device: the client core, the Firmware
// Update object and the in-place installer over a file-backed NOR flash.
type demoDevice struct {
	ep     string
	c      *client.Client
	o      *firmware.Object
	f      *inplace.Flash
	cancel context.CancelFunc
}

// stop powers the device down: the client de-registers and stops, the
// Firmware Update object ends its work. The flash stays open to be read.
func (d *demoDevice) stop() {
	if d.cancel != nil {
		d.cancel()
	}
	if d.c != nil {
		d.c.Stop() // de-registers
		d.c = nil
	}
	if d.o != nil {
		d.o.Close()
		d.o = nil
	}
}

// close stops the device and closes its flash file; it may be called again.
func (d *demoDevice) close() {
	d.stop()
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
}

// bootsV2 reports whether the device's flash boots exactly v2: the
// committed boot record names it and the image region holds its bytes.
// Call after stop.
func (d *demoDevice) bootsV2(v2 []byte) bool {
	if d.f == nil {
		return false
	}
	img, rec, err := inplace.Image(d.f)
	return err == nil && rec.Version == demoV2 && bytes.Equal(img, v2)
}

// Versions and device type of the demo's images.
const (
	demoV1         = "1.0.0"
	demoV2         = "2.0.0"
	demoDeviceType = "demo-sensor"
)

// runDemoJob runs the whole job and returns what it measured. Every piece
// it starts is stopped before it returns, in reverse order: devices
// (de-registering), campaign engine, bootstrap server, DM server, store.
func runDemoJob(ctx context.Context, o demoOptions) (res demoResult, err error) {
	t0 := time.Now()
	out := o.Out
	dir, err := os.MkdirTemp("", "fota-demo-")
	if err != nil {
		return res, fmt.Errorf("temp dir: %w", err)
	}
	res.Dir = dir
	defer func() {
		if !o.Keep {
			os.RemoveAll(dir)
		}
	}()
	fmt.Fprintf(out, "firmware: %s\n  v1 %d bytes, v2 %d bytes\n", o.Firmware.Source, len(o.Firmware.V1), len(o.Firmware.V2))

	// 1. Servers: DM (CoAP + DTLS + HTTP API), bootstrap (DTLS), firmware
	// repository and campaign engine, over one temp bbolt file.
	st, err := bolt.Open(filepath.Join(dir, "fota.db"))
	if err != nil {
		return res, err
	}
	defer st.Close()
	// A short campaign tick and poll: the demo's devices are on loopback
	// and a user is watching; a production server keeps the defaults.
	srv, err := server.Start(server.Config{Store: st, HTTPAddr: "127.0.0.1:0", Bootstrap: bootstrap.Options{CoAPSAddr: "127.0.0.1:0"}, Campaign: campaign.Config{Tick: 50 * time.Millisecond, Poll: 250 * time.Millisecond, DeviceTimeout: 90 * time.Second}, Config: dm.Config{CoAPAddr: "127.0.0.1:0", CoAPSAddr: "127.0.0.1:0", Logger: o.Log}})
	if err != nil {
		return res, fmt.Errorf("start server: %w", err)
	}
	defer srv.Close()
	bs, fw, cm := srv.Bootstrap, srv.Firmware, srv.Campaigns
	token, _ := srv.APIToken()
	apiURL := "http://" + srv.HTTPAddr().String()
	api := apiClient{base: apiURL, token: token, hc: &http.Client{Timeout: 2 * time.Minute}} // cmd/fota/provision.go
	fmt.Fprintf(out, "servers: DM coap://%s coaps://%s, bootstrap coaps://%s\n", srv.CoAPAddr(), srv.CoAPSAddr(), bs.CoAPSAddr())
	fmt.Fprintf(out, "HTTP API %s while the demo runs:\n  curl -H 'Authorization: Bearer %s' %s/api/clients\n", apiURL, token, apiURL)

	// 2. The operator uploads v1 and v2 (POST /api/firmware, as `fota
	// firmware add` does).
	img1, err := demoUpload(api, o.Firmware.V1, demoV1)
	if err != nil {
		return res, err
	}
	img2, err := demoUpload(api, o.Firmware.V2, demoV2)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "firmware repository: %s %s (id %s), %s %s (id %s)\n", demoDeviceType, demoV1, img1.ID, demoDeviceType, demoV2, img2.ID)

	// 3. Provision and start the devices.
	devs := make([]*demoDevice, o.Devices)
	defer func() {
		// Devices first: they de-register while the server still listens.
		var wg sync.WaitGroup
		for _, d := range devs {
			if d != nil {
				wg.Go(d.close)
			}
		}
		wg.Wait()
	}()
	key := fw.PublicKey()
	errs := make([]error, o.Devices)
	var wg sync.WaitGroup
	// At most 32 devices provision and bootstrap at once: a fleet powered
	// on together would have the bootstrap server's handshakes queue up
	// past the devices' timeouts.
	sem := make(chan struct{}, 32)
	for i := range devs {
		ep := fmt.Sprintf("demo-%03d", i+1)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			devs[i], errs[i] = startDemoDevice(ctx, api, bs.CoAPSAddr().String(), filepath.Join(dir, ep), ep, key, img1, o)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	eps := make([]string, len(devs))
	for i, d := range devs {
		eps[i] = d.ep
	}
	if err := waitRegistered(ctx, srv, eps, demoV1, time.Minute); err != nil {
		return res, err
	}
	res.SetupTime = time.Since(t0)
	fmt.Fprintf(out, "%d devices bootstrapped over DTLS-PSK and registered running %s (%.1f s)\n", len(eps), demoV1, res.SetupTime.Seconds())

	// 4. The campaign, created over the HTTP API as `fota campaign create`
	// does, watched in process.
	tc := time.Now()
	c := campaign.Campaign{Name: "demo", Image: img2.ID, Method: o.Mode, Waves: o.Waves, Concurrency: o.Concurrency,
		Targets: campaign.Selector{Endpoints: eps}}
	body, err := api.do("POST", "/api/campaigns", c)
	if err != nil {
		return res, fmt.Errorf("create campaign: %w", err)
	}
	var created campaign.Status
	if err := json.Unmarshal(body, &created); err != nil {
		return res, fmt.Errorf("create campaign: read answer: %w", err)
	}
	fmt.Fprintf(out, "campaign %s: %s → %s, %s, delta, in place, waves %v%%, %d at once\n", created.ID, demoV1, demoV2, o.Mode, created.Waves, created.Concurrency)
	final, states, waveTimes, err := watchDemoCampaign(ctx, cm, created.ID, out, o.Live)
	if err != nil {
		return res, err
	}
	res.CampaignTime = time.Since(tc)
	res.WaveTimes = waveTimes
	if final.State != campaign.Completed {
		fmt.Fprintf(out, "campaign %s: %s\n", final.State, final.Reason)
	}

	// 5. What the devices run now, read back from each (/3/0/3).
	sum := campaign.Summarize(states)
	res.Total = len(eps)
	res.Failed = sum.Failed
	res.BytesSent = sum.BytesSent
	res.BytesFull = int64(len(eps)) * int64(len(o.Firmware.V2))
	for _, s := range states {
		if s.State == campaign.DeviceSucceeded && res.PackageSize == 0 {
			res.PackageSize, res.PackageKind = s.PackageSize, s.PackageKind
		}
		if s.State == campaign.DeviceFailed {
			fmt.Fprintf(out, "  %s failed: result %d %s\n", s.Endpoint, s.Result, s.Error)
		}
	}
	reported := make([]bool, len(devs))
	for i, ep := range eps {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := srv.Read(rctx, ep, "/3/0/3", nil)
		cancel()
		reported[i] = err == nil && string(r.Payload) == demoV2
	}
	res.TotalTime = time.Since(t0)

	// 6. Shut the devices down (they de-register) and check each flash:
	// a device counts as updated only if it reported v2 and its flash
	// boots exactly the bytes of v2.
	var sw sync.WaitGroup
	for _, d := range devs {
		sw.Go(d.stop)
	}
	sw.Wait()
	for i, d := range devs {
		switch ok := d.bootsV2(o.Firmware.V2); {
		case reported[i] && ok:
			res.Updated++
		case reported[i]:
			fmt.Fprintf(out, "  %s reports %s but its flash does not boot v2\n", d.ep, demoV2)
		default:
			fmt.Fprintf(out, "  %s does not run %s\n", d.ep, demoV2)
		}
	}
	return res, nil
}

// demoUpload posts an image to the firmware repository.
func demoUpload(api apiClient, data []byte, version string) (fwrepo.Image, error) {
	q := url.Values{"version": {version}, "deviceType": {demoDeviceType}}
	req, err := http.NewRequest("POST", api.base+"/api/firmware?"+q.Encode(), bytes.NewReader(data))
	if err != nil {
		return fwrepo.Image{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+api.token)
	resp, err := api.hc.Do(req)
	if err != nil {
		return fwrepo.Image{}, fmt.Errorf("upload %s: %w", version, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return fwrepo.Image{}, fmt.Errorf("upload %s: %s: %s", version, resp.Status, strings.TrimSpace(string(body)))
	}
	var img fwrepo.Image
	if err := json.Unmarshal(body, &img); err != nil {
		return fwrepo.Image{}, fmt.Errorf("upload %s: read answer: %w", version, err)
	}
	return img, nil
}

// demoProvision gives ep a bootstrap credential and a configuration that
// hands it a fresh DM PSK, over the HTTP API exactly as `fota provision`
// does (cmd/fota/provision.go): credential first, then configuration.
func demoProvision(api apiClient, ep, bsID string, bsKey []byte) error {
	cred := map[string]any{
		"endpoint": ep,
		"tls":      map[string]any{"mode": "psk", "details": map[string]any{"identity": bsID, "key": hex.EncodeToString(bsKey)}},
	}
	if _, err := api.do("PUT", "/api/bootstrap/security/clients", cred); err != nil {
		return fmt.Errorf("provision %s: store bootstrap credential: %w", ep, err)
	}
	cfg := map[string]any{
		"toDelete": []string{"/0", "/1"},
		"security": map[string]any{"1": map[string]any{"uri": "", "securityMode": "PSK", "generatePsk": true, "serverId": 101}},
		"servers":  map[string]any{"0": map[string]any{"shortId": 101, "lifetime": 300, "binding": "U"}},
	}
	if _, err := api.do("PUT", "/api/bootstrap/"+url.PathEscape(ep), cfg); err != nil {
		return fmt.Errorf("provision %s: store bootstrap configuration: %w", ep, err)
	}
	return nil
}

// demoFlashGeometry is a NOR flash whose in-place layout (inplace.LayoutFor:
// 5 metadata blocks, the rest three quarters image, one quarter staging)
// holds the larger image with a block to spare.
func demoFlashGeometry(v1, v2 int) inplace.Geometry {
	const eb = inplace.DefaultEraseBlock
	img := (max(v1, v2)+eb-1)/eb + 1
	free := (img*4+2)/3 + 1
	return inplace.Geometry{Size: (free + 5) * eb, EraseBlock: eb, PageSize: inplace.DefaultPageSize}
}

// startDemoDevice provisions ep on the server, manufactures its flash with
// v1 and its factory bootstrap account only, bootstraps over DTLS-PSK and
// starts the client on the DM account it was given.
func startDemoDevice(ctx context.Context, api apiClient, bsAddr, dir, ep string, key []byte, img1 fwrepo.Image, o demoOptions) (*demoDevice, error) {
	bsKey := make([]byte, 16)
	if _, err := rand.Read(bsKey); err != nil {
		return nil, err
	}
	bsID := ep + "-bs"
	if err := demoProvision(api, ep, bsID, bsKey); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	d := &demoDevice{ep: ep}
	g := demoFlashGeometry(len(o.Firmware.V1), len(o.Firmware.V2))
	f, err := inplace.CreateFlash(filepath.Join(dir, "flash.bin"), g, 1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ep, err)
	}
	d.f = f
	p := inplace.Provision{Image: o.Firmware.V1, Version: demoV1, DeviceType: demoDeviceType, TrustedKey: key, SeqNo: img1.SeqNo}
	if err := p.Write(f); err != nil {
		d.close()
		return nil, fmt.Errorf("%s: provision flash: %w", ep, err)
	}
	cfg := client.Config{
		Endpoint: ep, StateDir: filepath.Join(dir, "state"), Logger: o.Log,
		Device: client.DeviceInfo{Manufacturer: "fotastack", Model: "demo-1", Serial: ep,
			FirmwareVersion: demoV1, DeviceType: demoDeviceType, HardwareVersion: "1", SoftwareVersion: shortVersion()},
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
	}
	accounts, err := client.Bootstrap(ctx, cfg, client.BootstrapConfig{URI: "coaps://" + bsAddr, PSKIdentity: bsID, PSKKey: bsKey, Timeout: 30 * time.Second}, nil)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("%s: %w", ep, err)
	}
	acc, err := accounts.Check()
	if err != nil {
		d.close()
		return nil, fmt.Errorf("%s: bootstrapped account: %w", ep, err)
	}
	cfg.ServerURI, cfg.PSKIdentity, cfg.PSKKey = acc.URI, acc.PSKIdentity, acc.PSKKey
	cfg.Lifetime = time.Duration(acc.Lifetime) * time.Second
	c, err := client.New(cfg)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("%s: %w", ep, err)
	}
	obj, err := firmware.Open(firmware.Config{Flash: f, StateDir: filepath.Join(dir, "fw"), Logger: o.Log})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("%s: %w", ep, err)
	}
	d.o = obj
	dctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	firmware.Attach(dctx, c, obj)
	d.c = c
	if err := c.Start(dctx); err != nil {
		d.close()
		return nil, fmt.Errorf("%s: start: %w", ep, err)
	}
	return d, nil
}

// waitRegistered waits until every endpoint is registered and reports
// version in /3/0/3.
func waitRegistered(ctx context.Context, srv *server.Server, eps []string, version string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pending := append([]string(nil), eps...)
	for len(pending) > 0 {
		var still []string
		for _, ep := range pending {
			if srv.Device(ep) == nil {
				still = append(still, ep)
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			r, err := srv.Read(rctx, ep, "/3/0/3", nil)
			cancel()
			if err != nil || string(r.Payload) != version {
				still = append(still, ep)
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d devices not registered running %s after %v: %v", len(pending), version, timeout, pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// watchDemoCampaign follows the campaign until it is no longer running:
// a progress bar per wave (devices of that wave finished), fed from the
// campaign's persisted device states. It returns the final state and how
// long each wave took, from its start to its last device finishing.
func watchDemoCampaign(ctx context.Context, cm *campaign.Engine, id string, out io.Writer, live bool) (campaign.Campaign, []campaign.Device, []time.Duration, error) {
	var (
		bar       *progressBar
		wave      = -1
		waveStart time.Time
		times     []time.Duration
		waves     []float64
	)
	finishWave := func(devs []campaign.Device) {
		if wave < 0 {
			return
		}
		if bar != nil {
			bar.Set(countDone(devs, wave))
			bar.Finish()
			return
		}
		var n int64
		for _, d := range devs {
			if d.Wave == wave {
				n++
			}
		}
		fmt.Fprintf(out, "wave %d/%d: %d/%d devices finished, %.1f s\n", wave+1, len(waves), countDone(devs, wave), n, time.Since(waveStart).Seconds())
	}
	for {
		c, devs, err := cm.Campaign(id)
		if err != nil {
			return c, nil, nil, err
		}
		waves = c.Waves
		// Waves are processed in order; the campaign moves to wave k+1
		// only once wave k reached its success threshold.
		for wave < c.Wave || (wave < len(c.Waves)-1 && c.State != campaign.Running && waveDone(devs, wave+1)) {
			if wave >= 0 {
				times = append(times, time.Since(waveStart))
				finishWave(devs)
			}
			wave++
			waveStart = time.Now()
			var n int64
			for _, d := range devs {
				if d.Wave == wave {
					n++
				}
			}
			label := fmt.Sprintf("wave %d/%d (%3.0f%%)", wave+1, len(c.Waves), c.Waves[wave])
			if live {
				bar = newProgressBar(label, n)
				bar.w = out
			}
		}
		if bar != nil {
			bar.Set(countDone(devs, wave))
		}
		if c.State != campaign.Running {
			if wave >= 0 && len(times) <= wave {
				times = append(times, time.Since(waveStart))
			}
			finishWave(devs)
			return c, devs, times, nil
		}
		select {
		case <-ctx.Done():
			finishWave(devs)
			return c, devs, times, fmt.Errorf("campaign %s: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// countDone counts the finished devices of wave k.
func countDone(devs []campaign.Device, k int) int64 {
	var n int64
	for _, d := range devs {
		if d.Wave == k && (d.State == campaign.DeviceSucceeded || d.State == campaign.DeviceFailed) {
			n++
		}
	}
	return n
}

// waveDone reports whether every device of wave k has finished.
func waveDone(devs []campaign.Device, k int) bool {
	n := 0
	for _, d := range devs {
		if d.Wave == k {
			n++
			if d.State != campaign.DeviceSucceeded && d.State != campaign.DeviceFailed {
				return false
			}
		}
	}
	return n > 0
}

// printDemoResult prints the final table and the one-line summary, last.
func printDemoResult(w io.Writer, o demoOptions, r demoResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "devices updated\t%d / %d\n", r.Updated, r.Total)
	fmt.Fprintf(tw, "devices failed\t%d\n", r.Failed)
	fmt.Fprintf(tw, "delta package\t%s (%d bytes, %s, v2 is %s)\n", kib(int64(r.PackageSize)), r.PackageSize, r.PackageKind, kib(int64(len(o.Firmware.V2))))
	fmt.Fprintf(tw, "bytes sent\t%s (%d bytes)\n", kib(r.BytesSent), r.BytesSent)
	fmt.Fprintf(tw, "full images would be\t%s (%d × %d bytes)\n", kib(r.BytesFull), r.Total, len(o.Firmware.V2))
	fmt.Fprintf(tw, "ratio\t%.1f%%\n", ratio(r.BytesSent, r.BytesFull))
	fmt.Fprintf(tw, "setup (servers, bootstrap, register)\t%.1f s\n", r.SetupTime.Seconds())
	for i, t := range r.WaveTimes {
		fmt.Fprintf(tw, "wave %d (%g%%)\t%.1f s\n", i+1, o.Waves[min(i, len(o.Waves)-1)], t.Seconds())
	}
	fmt.Fprintf(tw, "campaign\t%.1f s\n", r.CampaignTime.Seconds())
	fmt.Fprintf(tw, "total\t%.1f s\n", r.TotalTime.Seconds())
	tw.Flush()
	if o.Keep {
		fmt.Fprintf(w, "kept %s\n", r.Dir)
	}
	status := "ok"
	if r.Updated != r.Total {
		status = "FAILED"
	}
	fmt.Fprintf(w, "demo %s: %d/%d devices on v2, %d failed; sent %s instead of %s (%.1f%%), %.1f s\n",
		status, r.Updated, r.Total, r.Total-r.Updated, kib(r.BytesSent), kib(r.BytesFull), ratio(r.BytesSent, r.BytesFull), r.TotalTime.Seconds())
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// kib formats a byte count as KiB or MiB.
func kib(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
}
