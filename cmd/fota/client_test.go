package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/dm"
	fwrepo "github.com/fotastack/fota/server/firmware"

	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/store/bolt"
)

// `fota client --flash` takes a firmware update end to end: the client
// manufactures its flash from v1 (--image), boots it and registers
// reporting v1; a campaign to v2 delivers the delta package; the device
// installs it in place, re-registers reporting v2, and its flash boots
// exactly v2's bytes. Directly against the DM server with push delivery,
// and bootstrapped over DTLS-PSK (client.BootstrapConfig.Setup attaches
// /5) with pull delivery over coaps.
func TestClientFlashTakesFirmwareUpdate(t *testing.T) {
	fw := generateDemoFirmware(48<<10, 3)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "fota.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.Start(server.Config{Store: st, HTTPAddr: "127.0.0.1:0", Bootstrap: bootstrap.Options{CoAPSAddr: "127.0.0.1:0"}, Campaign: campaign.Config{Tick: 50 * time.Millisecond, Poll: 200 * time.Millisecond, DeviceTimeout: 30 * time.Second}, Config: dm.Config{CoAPAddr: "127.0.0.1:0", CoAPSAddr: "127.0.0.1:0", Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	bs, repo, cm := srv.Bootstrap, srv.Firmware, srv.Campaigns
	token, _ := srv.APIToken()
	api := apiClient{base: "http://" + srv.HTTPAddr().String(), token: token, hc: &http.Client{Timeout: 30 * time.Second}}
	if _, err := demoUpload(api, fw.V1, demoV1); err != nil {
		t.Fatal(err)
	}
	img2, err := demoUpload(api, fw.V2, demoV2)
	if err != nil {
		t.Fatal(err)
	}
	v1File := filepath.Join(dir, "v1.bin")
	if err := os.WriteFile(v1File, fw.V1, 0o600); err != nil {
		t.Fatal(err)
	}
	size := demoFlashGeometry(len(fw.V1), len(fw.V2)).Size

	for _, tc := range []struct {
		name, method string
		bootstrap    bool
	}{
		{"server-push", campaign.DeliveryPush, false},
		{"bootstrap-pull", campaign.DeliveryPull, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := "cli-" + tc.name
			devDir := filepath.Join(dir, ep)
			flashFile := filepath.Join(devDir, "flash.bin")
			args := []string{"--endpoint", ep, "--state-dir", filepath.Join(devDir, "state"),
				"--flash", flashFile, "--image", v1File, "--firmware-version", demoV1,
				"--flash-size", strconv.Itoa(size), "--device-type", demoDeviceType,
				"--trust", hex.EncodeToString(repo.PublicKey())}
			if tc.bootstrap {
				bsKey := []byte("0123456789abcdef")
				if err := demoProvision(api, ep, ep+"-bs", bsKey); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--bootstrap", "coaps://"+bs.CoAPSAddr().String(), "--psk-id", ep+"-bs", "--psk-key", hex.EncodeToString(bsKey))
			} else {
				args = append(args, "--server", "coap://"+srv.CoAPAddr().String())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			stopClient := startClient(ctx, args)
			defer stopClient()
			if err := waitRegistered(ctx, srv, []string{ep}, demoV1, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			body, err := api.do("POST", "/api/campaigns", campaign.Campaign{Name: ep, Image: img2.ID, Method: tc.method,
				Waves: []float64{100}, Concurrency: 1, Targets: campaign.Selector{Endpoints: []string{ep}}})
			if err != nil {
				t.Fatal(err)
			}
			var created campaign.Status
			if err := json.Unmarshal(body, &created); err != nil {
				t.Fatal(err)
			}
			var devs []campaign.Device
			for {
				c, d, err := cm.Campaign(created.ID)
				if err != nil {
					t.Fatal(err)
				}
				if c.State != campaign.Running {
					if c.State != campaign.Completed {
						t.Fatalf("campaign %s: %s", c.State, c.Reason)
					}
					devs = d
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("campaign still running: %+v", d)
				case <-time.After(100 * time.Millisecond):
				}
			}
			if len(devs) != 1 || devs[0].State != campaign.DeviceSucceeded || devs[0].PackageKind != fwrepo.PackageDelta {
				t.Fatalf("device states %+v", devs)
			}
			// Re-registered running v2 (/3/0/3 read from the device).
			if err := waitRegistered(ctx, srv, []string{ep}, demoV2, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := stopClient(); err != nil {
				t.Fatalf("client: %v", err)
			}
			f, err := inplace.OpenFlash(flashFile)
			if err != nil {
				t.Fatal(err)
			}
			img, rec, err := inplace.Image(f)
			f.Close()
			if err != nil || rec.Version != demoV2 || !bytes.Equal(img, fw.V2) {
				t.Fatalf("flash boots %q (%d bytes, equal to v2: %v), err %v", rec.Version, len(img), bytes.Equal(img, fw.V2), err)
			}
			// Powered up again with the same flags: the flash exists, so
			// --image and --firmware-version 1.0.0 are not used; /3/0/3
			// reports what the flash boots.
			stopAgain := startClient(ctx, args)
			defer stopAgain()
			if err := waitRegistered(ctx, srv, []string{ep}, demoV2, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := stopAgain(); err != nil {
				t.Fatalf("client after restart: %v", err)
			}
		})
	}
}

// startClient runs `fota client args` until the returned stop is called;
// stop returns what the client returned (it may be called again).
func startClient(ctx context.Context, args []string) (stop func() error) {
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runClientCtx(cctx, args) }()
	return sync.OnceValue(func() error {
		cancel()
		return <-done
	})
}

// Flag errors of `fota client --flash` end with exit status 2 before any
// network traffic.
func TestClientFlashFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--endpoint", "x", "--flash", filepath.Join(dir, "missing.bin")},
		{"--endpoint", "x", "--image", filepath.Join(dir, "v1.bin")},
	} {
		err := runClientCtx(context.Background(), args)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: %v, want exit status 2", args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.bin")); !os.IsNotExist(err) {
		t.Errorf("flash file made without --image: %v", err)
	}
}
