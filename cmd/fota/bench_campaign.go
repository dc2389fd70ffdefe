package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	fwrepo "github.com/fotastack/fota/server/firmware"

	"github.com/fotastack/fota/client/linksim"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/campaign"
)

// benchCampaign is the campaign phase of `fota bench fleet --campaign`:
// the server's firmware repository holds v1 and v2, every fleet device
// boots v1 from its own flash, and a delta campaign (pull over coaps)
// updates them all over the fleet's simulated link.
type benchCampaign struct {
	fw      demoFirmware
	cm      *campaign.Engine
	img2    fwrepo.Image
	profile linksim.Profile
}

// Per-block bytes on the downlink besides the package: CoAP header 4,
// token 8, ETag 9, Block2 4, Content-Format 2, payload marker 1 (28); DTLS
// record header 13, explicit nonce 8, CCM_8 tag 8 (29); UDP 8, IPv4 20.
const benchBlockOverhead = 28 + 29 + 28

// benchBlockSize is the Block2 size the devices ask for (client/firmware
// default).
const benchBlockSize = 1024

// benchPullWindow is the Block2 window (NSTART) the bench's server grants
// every device for its pull: 8 blocks of 1 KiB, the whole of a small delta
// in one round trip.
const benchPullWindow = 8

// benchCampaignConfig tunes the campaign engine for the link: it reads
// device state every Poll when no notification arrives, a few round trips
// rather than the 5 s default.
func benchCampaignConfig(prof linksim.Profile, window int) campaign.Config {
	poll := max(time.Second, 2*(prof.RTT()+prof.Jitter))
	return campaign.Config{Tick: 200 * time.Millisecond, Poll: poll, DeviceTimeout: time.Hour, PullWindow: map[string]int{"*": window}}
}

// prepareBenchCampaign uploads v1 and v2 and writes v1 into dir for the
// fleet's flashes; it returns the `fota fleet` flags that give each
// device a flash running v1.
func prepareBenchCampaign(srv *server.Server, dir string, prof linksim.Profile, out io.Writer) (*benchCampaign, []string, error) {
	fwPair, ok, err := loadDemoFirmware(firmwareDirCandidates(""), "upy-pybv11-oneline")
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		fwPair = generateDemoFirmware(160<<10, 1)
		fwPair.Source += "; no ../shared/firmware found"
	}
	fw, cm := srv.Firmware, srv.Campaigns
	token, _ := srv.APIToken()
	api := apiClient{base: "http://" + srv.HTTPAddr().String(), token: token, hc: &http.Client{Timeout: time.Minute}}
	img1, err := demoUpload(api, fwPair.V1, demoV1)
	if err != nil {
		return nil, nil, err
	}
	img2, err := demoUpload(api, fwPair.V2, demoV2)
	if err != nil {
		return nil, nil, err
	}
	v1 := filepath.Join(dir, "v1.bin")
	if err := os.WriteFile(v1, fwPair.V1, 0o600); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(out, "campaign firmware: %s; v1 %d bytes, v2 %d bytes\n", fwPair.Source, len(fwPair.V1), len(fwPair.V2))
	args := []string{"--flash-image", v1, "--firmware-version", demoV1, "--device-type", demoDeviceType,
		"--trust", hex.EncodeToString(fw.PublicKey()), "--seq", strconv.FormatUint(uint64(img1.SeqNo), 10)}
	return &benchCampaign{fw: fwPair, cm: cm, img2: img2, profile: prof}, args, nil
}

// benchCampaignResult is what the campaign phase measured.
type benchCampaignResult struct {
	Devices, Succeeded, Failed int
	To99                       time.Duration // campaign start to 99% of the fleet succeeded (0: not reached)
	All                        time.Duration
	PackageSize                int
	PackageKind                string
	Ideal                      time.Duration
	// Phases are the medians over the devices of the time spent in each
	// step, seen by the watcher once a second (benchPhases names them).
	Phases []time.Duration
}

// benchPhases names the steps of one device's update, as the campaign's
// device states show them.
var benchPhases = []string{
	"campaign start → downloading (package offered)",
	"downloading → first block fetched",
	"first block → downloaded",
	"downloaded → updating (Update executed)",
	"updating → succeeded (installed, rebooted, re-registered, checked)",
}

// run creates the campaign for eps and follows it to its end.
func (b *benchCampaign) run(ctx context.Context, eps []string, out io.Writer) (benchCampaignResult, error) {
	res := benchCampaignResult{Devices: len(eps)}
	start := time.Now()
	c, err := b.cm.Create(campaign.Campaign{Name: "bench", Image: b.img2.ID, Method: campaign.DeliveryPull,
		Waves: []float64{100}, Concurrency: len(eps), Targets: campaign.Selector{Endpoints: eps}})
	if err != nil {
		return res, fmt.Errorf("create campaign: %w", err)
	}
	need := int(math.Ceil(0.99 * float64(len(eps))))
	fmt.Fprintf(out, "campaign %s: %d devices, %s → %s, delta, pull over coaps, profile %s\n", c.ID, len(eps), demoV1, demoV2, b.profile.Name)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastPrint := time.Time{}
	// seen[ep][k] is when the watcher first saw ep past step k.
	seen := map[string][]time.Time{}
	stepOf := func(d campaign.Device) int {
		switch d.State {
		case campaign.DeviceDownloading:
			if d.Progress > 0 {
				return 2
			}
			return 1
		case campaign.DeviceDownloaded:
			return 3
		case campaign.DeviceUpdating:
			return 4
		case campaign.DeviceSucceeded:
			return 5
		}
		return 0
	}
	for {
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("campaign: %d of %d devices updated: %w", res.Succeeded, len(eps), ctx.Err())
		case <-tick.C:
		}
		cs, devs, err := b.cm.Campaign(c.ID)
		if err != nil {
			return res, err
		}
		states := map[string]int{}
		progress := 0
		res.Succeeded, res.Failed = 0, 0
		now := time.Now()
		for _, d := range devs {
			ts := seen[d.Endpoint]
			if ts == nil {
				ts = make([]time.Time, len(benchPhases)+1)
				ts[0] = start
				seen[d.Endpoint] = ts
			}
			for k := 1; k <= stepOf(d); k++ {
				if ts[k].IsZero() {
					ts[k] = now
				}
			}
			states[d.State]++
			progress += d.Progress
			switch d.State {
			case campaign.DeviceSucceeded:
				res.Succeeded++
				if res.PackageSize == 0 {
					res.PackageSize, res.PackageKind = d.PackageSize, d.PackageKind
				}
			case campaign.DeviceFailed:
				res.Failed++
			}
		}
		if res.To99 == 0 && res.Succeeded >= need {
			res.To99 = time.Since(start)
		}
		done := cs.State != campaign.Running
		if done || time.Since(lastPrint) >= 10*time.Second {
			lastPrint = time.Now()
			keys := make([]string, 0, len(states))
			for k := range states {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			line := ""
			for _, k := range keys {
				line += fmt.Sprintf(" %s %d", k, states[k])
			}
			fmt.Fprintf(out, "campaign: %5.0f s:%s; mean download %d%%\n", time.Since(start).Seconds(), line, progress/max(len(devs), 1))
		}
		if done {
			res.All = time.Since(start)
			for _, d := range devs {
				if d.State == campaign.DeviceFailed {
					fmt.Fprintf(out, "  %s failed: result %d %s\n", d.Endpoint, d.Result, d.Error)
				}
			}
			break
		}
	}
	res.Ideal = linkIdeal(res.PackageSize, b.profile)
	for k := 1; k <= len(benchPhases); k++ {
		var ds []time.Duration
		for _, ts := range seen {
			if !ts[k].IsZero() {
				ds = append(ds, ts[k].Sub(ts[k-1]))
			}
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		var m time.Duration
		if len(ds) > 0 {
			m = ds[len(ds)/2]
		}
		res.Phases = append(res.Phases, m)
	}
	return res, nil
}

// Unavoidable round trips of one device's update in LwM2M 1.2 over a
// DTLS link, with Block2 pipelined over a window as large as the package
// and a device that keeps its DTLS session for resumption across the
// reboot (see doc/BENCH-fleet.md, "The link-limited ideal"):
//
//	0.5  the Write of the Package URI reaches the device
//	1    the window of Block2 GETs up, the blocks down (their bytes are
//	     counted by the rate term, not here)
//	1    the Downloaded notification up, the Execute of Update down
//	2    after the reboot, ClientHello / HelloVerifyRequest (the cookie
//	     exchange that guards against spoofed sources) and the
//	     abbreviated handshake (ClientHello / ServerHello…Finished)
//	0.5  the device's Finished with its Register reaches the server
//	1    the server learns the running version: its Read of /3/0/3 (or
//	     the 2.01 down and the device's Send of it up)
const idealRoundTrips = 6.0

// linkIdeal is the time one device needs at least to be updated with a
// package of size bytes over p: the package's bytes on the downlink with
// their per-block CoAP, DTLS, UDP and IP overhead at the link's rate, plus
// the unavoidable round trips at the link's mean round trip (RTT plus the
// mean of the jitter each way). Every device has a link of its own, so it
// is also the fleet's ideal.
func linkIdeal(size int, p linksim.Profile) time.Duration {
	return linkWire(size, p) + time.Duration(idealRoundTrips*float64(meanRTT(p)))
}

// linkWire is the serialization time of the package's blocks on p's
// downlink.
func linkWire(size int, p linksim.Profile) time.Duration {
	blocks := (size + benchBlockSize - 1) / benchBlockSize
	if p.DownRate <= 0 {
		return 0
	}
	return time.Duration(float64(size+blocks*benchBlockOverhead) * 8 / float64(p.DownRate) * float64(time.Second))
}

// meanRTT is p's round trip with the mean jitter of both directions.
func meanRTT(p linksim.Profile) time.Duration { return p.RTT() + p.Jitter }

// print writes the campaign's figures next to the link-limited ideal.
func (r benchCampaignResult) print(w io.Writer, p linksim.Profile) {
	blocks := (r.PackageSize + benchBlockSize - 1) / benchBlockSize
	fmt.Fprintf(w, "campaign: %d of %d devices updated to %s, %d failed, all finished in %.1f s\n", r.Succeeded, r.Devices, demoV2, r.Failed, r.All.Seconds())
	fmt.Fprintf(w, "campaign: package %s %d bytes = %d blocks of %d\n", r.PackageKind, r.PackageSize, blocks, benchBlockSize)
	fmt.Fprintf(w, "campaign: link-limited ideal = (package + blocks × %d B overhead) × 8 / downlink + %.1f unavoidable round trips × mean RTT = (%d + %d × %d) × 8 / %d bit/s + %.1f × %.1f s = %.1f + %.1f = %.1f s (profile %s: RTT %v + jitter up to %v each way, down %d bit/s, up %d bit/s, loss %.1f%%; doc/BENCH-fleet.md)\n",
		benchBlockOverhead, idealRoundTrips, r.PackageSize, blocks, benchBlockOverhead, p.DownRate, idealRoundTrips, meanRTT(p).Seconds(),
		linkWire(r.PackageSize, p).Seconds(), idealRoundTrips*meanRTT(p).Seconds(), r.Ideal.Seconds(),
		p.Name, p.RTT(), p.Jitter, p.DownRate, p.UpRate, 100*p.Loss)
	for k, d := range r.Phases {
		fmt.Fprintf(w, "campaign: median %5.1f s  %s\n", d.Seconds(), benchPhases[k])
	}
	if r.To99 > 0 && r.Ideal > 0 {
		fmt.Fprintf(w, "campaign: time to 99%% updated %.1f s; ratio to ideal %.2f (target <= 1.3)\n", r.To99.Seconds(), r.To99.Seconds()/r.Ideal.Seconds())
	} else if r.To99 > 0 {
		fmt.Fprintf(w, "campaign: time to 99%% updated %.1f s (the link has no limits: no ratio)\n", r.To99.Seconds())
	} else {
		fmt.Fprintf(w, "campaign: 99%% of the fleet was not updated\n")
	}
}
