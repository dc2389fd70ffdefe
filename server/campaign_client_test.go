package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fwrepo "github.com/fotastack/fota/server/firmware"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/firmware"
	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/campaign"
)

// realDevice is the project's own device: client core, Firmware Update
// object and in-place installer over a simulated NOR flash file.
type realDevice struct {
	c *client.Client
	o *firmware.Object
	f *inplace.Flash
}

func startRealDevice(t *testing.T, e *campaignEnv, ep, version string, image []byte) *realDevice {
	t.Helper()
	return startRealDeviceLifetime(t, e, ep, version, image, 0)
}

func startRealDeviceLifetime(t *testing.T, e *campaignEnv, ep, version string, image []byte, lifetime time.Duration) *realDevice {
	t.Helper()
	return startRealDeviceAt(t, e, ep, version, image, lifetime, "coaps://"+e.srv.CoAPSAddr().String())
}

// startRealDeviceAt is startRealDeviceLifetime with the Server URI the
// device dials (a proxy in front of the server, say).
func startRealDeviceAt(t *testing.T, e *campaignEnv, ep, version string, image []byte, lifetime time.Duration, uri string) *realDevice {
	t.Helper()
	return startRealDeviceSeq(t, e, ep, version, image, lifetime, uri, 1)
}

// startRealDeviceSeq is startRealDeviceAt with the anti-rollback counter
// the device's flash is provisioned with (what its running image had).
func startRealDeviceSeq(t *testing.T, e *campaignEnv, ep, version string, image []byte, lifetime time.Duration, uri string, seq uint32) *realDevice {
	t.Helper()
	dir := t.TempDir()
	f, err := inplace.CreateFlash(filepath.Join(dir, "flash.bin"), inplace.Geometry{Size: 256 << 10, EraseBlock: 4096, PageSize: 256}, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := inplace.Provision{Image: image, Version: version, DeviceType: "sim", TrustedKey: e.fw.PublicKey(), SeqNo: seq}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	key := []byte("real-device-key!")
	e.srv.AddPSK(ep, ep+"-id", key)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := client.New(client.Config{
		Endpoint: ep, ServerURI: uri, PSKIdentity: ep + "-id", PSKKey: key,
		Device:   client.DeviceInfo{Manufacturer: "Fotastack Sim", FirmwareVersion: version, DeviceType: "sim"},
		StateDir: filepath.Join(dir, "state"), Logger: quiet, Lifetime: lifetime, RequestTimeout: 2 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := firmware.Open(firmware.Config{Flash: f, StateDir: filepath.Join(dir, "fw"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	firmware.Attach(ctx, c, o)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		c.Stop()
		o.Close()
		f.Close()
	})
	return &realDevice{c: c, o: o, f: f}
}

// The campaign against the project's real devices over DTLS: two waves,
// pull and push, delta packages from v1; each device verifies the
// signature, installs in place, reboots and re-registers running v2.
func TestCampaignRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("real devices with in-place install")
	}
	for _, method := range []string{campaign.DeliveryPull, campaign.DeliveryPush} {
		t.Run(method, func(t *testing.T) {
			e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
			v1, v2 := testImages(40<<10, 11)
			if _, err := e.fw.AddImage("sim", "1.0", v1, false); err != nil {
				t.Fatal(err)
			}
			img2, err := e.fw.AddImage("sim", "2.0", v2, false)
			if err != nil {
				t.Fatal(err)
			}
			var eps []string
			// The full-image fallback is exercised by
			// TestCampaignRealClientsFullImage (campaign_full_test.go).
			for i := 0; i < 4; i++ {
				ep := fmt.Sprintf("real-%s-%d", method, i)
				startRealDevice(t, e, ep, "1.0", v1)
				eps = append(eps, ep)
			}
			waitFor(t, "devices registered", func() bool {
				for _, ep := range eps {
					if e.srv.Device(ep) == nil {
						return false
					}
				}
				return true
			})
			c, err := e.cm.Create(campaign.Campaign{Image: img2.ID, Targets: campaign.Selector{Endpoints: eps},
				Method: method, Waves: []float64{25, 100}, Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			c, states := waitCampaign(t, e.cm, c.ID, "ended", func(c campaign.Campaign, _ []campaign.Device) bool {
				return c.State != campaign.Running
			})
			if c.State != campaign.Completed {
				t.Fatalf("campaign %s: %s\n%+v", c.State, c.Reason, states)
			}
			for _, s := range states {
				if s.State != campaign.DeviceSucceeded || s.Result != 1 || s.PackageKind != fwrepo.PackageDelta {
					t.Fatalf("device %+v", s)
				}
				resp, err := e.srv.Read(context.Background(), s.Endpoint, "/3/0/3", nil)
				if err != nil || string(resp.Payload) != "2.0" {
					t.Fatalf("%s runs %q (%v)", s.Endpoint, resp.Payload, err)
				}
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A server restart mid-campaign with real devices: the server comes back
// on the same addresses from the same bbolt file; the devices find their
// sessions gone at their next registration Update and register again; the
// campaign resumes and every device ends on v2 having been sent the
// package and the Update once.
func TestCampaignRealClientsRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real devices with in-place install")
	}
	db := filepath.Join(t.TempDir(), "fota.db")
	e := startCampaigns(t, db)
	v1, v2 := testImages(40<<10, 12)
	e.fw.AddImage("sim", "1.0", v1, false)
	img2, err := e.fw.AddImage("sim", "2.0", v2, false)
	if err != nil {
		t.Fatal(err)
	}
	var eps []string
	for i := 0; i < 3; i++ {
		ep := fmt.Sprintf("rr-%d", i)
		startRealDeviceLifetime(t, e, ep, "1.0", v1, 4*time.Second)
		eps = append(eps, ep)
	}
	waitFor(t, "devices registered", func() bool {
		for _, ep := range eps {
			if e.srv.Device(ep) == nil {
				return false
			}
		}
		return true
	})
	c, err := e.cm.Create(campaign.Campaign{Image: img2.ID, Targets: campaign.Selector{Endpoints: eps}, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitCampaign(t, e.cm, c.ID, "first device done", func(_ campaign.Campaign, ds []campaign.Device) bool {
		return ds[0].State == campaign.DeviceSucceeded
	})
	coaps, coap := e.srv.CoAPSAddr().String(), e.srv.CoAPAddr().String()
	e.cm.Close()
	e.srv.Stop()
	e2 := startCampaigns(t, db, func(cfg *server.Config) { cfg.CoAPSAddr, cfg.CoAPAddr = coaps, coap })
	c, states := waitCampaign(t, e2.cm, c.ID, "ended", func(c campaign.Campaign, _ []campaign.Device) bool {
		return c.State != campaign.Running
	})
	if c.State != campaign.Completed {
		t.Fatalf("campaign %s: %s\n%+v", c.State, c.Reason, states)
	}
	for i, s := range states {
		// The device done before the restart is not offered again. One
		// whose offer was stored but cut by the stop before it reached the
		// device stays idle and is offered once more after the restart.
		maxOffers := 2
		if i == 0 {
			maxOffers = 1
		}
		if s.State != campaign.DeviceSucceeded || s.Offers < 1 || s.Offers > maxOffers {
			t.Fatalf("device %+v", s)
		}
	}
}

// Issue 14: a campaign to an older version is refused, naming the
// versions; with allowDowngrade the real device (whose installer refuses a
// package below its rollback counter) is moved back to 1.0, and a later
// campaign takes it up to 2.0 again: the counters stay in order.
func TestCampaignDowngradeRealClient(t *testing.T) {
	if testing.Short() {
		t.Skip("real devices with in-place install")
	}
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	v1, v2 := testImages(40<<10, 13)
	img2, err := e.fw.AddImage("sim", "2.0", v2, false) // newest first: the order of upload must not matter
	if err != nil {
		t.Fatal(err)
	}
	img1, err := e.fw.AddImage("sim", "1.0", v1, false)
	if err != nil {
		t.Fatal(err)
	}
	startRealDeviceSeq(t, e, "down-1", "2.0", v2, 0, "coaps://"+e.srv.CoAPSAddr().String(), img2.SeqNo)
	waitFor(t, "device registered", func() bool { return e.srv.Device("down-1") != nil })
	target := campaign.Selector{Endpoints: []string{"down-1"}}
	_, err = e.cm.Create(campaign.Campaign{Image: img1.ID, Targets: target})
	if !errors.Is(err, campaign.ErrDowngrade) || !strings.Contains(err.Error(), "1.0") || !strings.Contains(err.Error(), "2.0") {
		t.Fatalf("campaign 2.0 -> 1.0 without allowDowngrade: %v", err)
	}
	if len(e.cm.List()) != 0 {
		t.Fatal("the refused campaign was stored")
	}
	run := func(c campaign.Campaign, want string) {
		t.Helper()
		c, err := e.cm.Create(c)
		if err != nil {
			t.Fatal(err)
		}
		c, states := waitCampaign(t, e.cm, c.ID, "ended", func(c campaign.Campaign, _ []campaign.Device) bool { return c.State != campaign.Running })
		if c.State != campaign.Completed || states[0].State != campaign.DeviceSucceeded || states[0].Result != 1 {
			t.Fatalf("campaign to %s: %s %s\n%+v", want, c.State, c.Reason, states)
		}
		resp, err := e.srv.Read(context.Background(), "down-1", "/3/0/3", nil)
		if err != nil || string(resp.Payload) != want {
			t.Fatalf("device runs %q (%v), want %s", resp.Payload, err, want)
		}
	}
	run(campaign.Campaign{Image: img1.ID, Targets: target, AllowDowngrade: true}, "1.0")
	run(campaign.Campaign{Image: img2.ID, Targets: target}, "2.0")
}
