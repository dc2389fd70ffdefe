package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fwrepo "github.com/fotastack/fota/server/firmware"

	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/server/campaign"
)

// The demo's whole path with four devices and a generated pair: servers
// on loopback, provisioning over the HTTP API, bootstrap over DTLS-PSK,
// a two-wave delta campaign, in-place install, re-registration on v2
// (read back from each device's /3/0/3), clean shutdown.
func TestDemoEveryDeviceEndsOnV2(t *testing.T) {
	for _, mode := range []string{campaign.DeliveryPull, campaign.DeliveryPush} {
		t.Run(mode, func(t *testing.T) {
			if testing.Short() && mode == campaign.DeliveryPush {
				t.Skip("one mode in -short")
			}
			var out bytes.Buffer
			o := demoOptions{
				Devices: 4, Mode: mode, Waves: []float64{25, 100}, Concurrency: 4,
				Firmware: generateDemoFirmware(48<<10, 7),
				Out:      &out, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			r, err := runDemoJob(ctx, o)
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out.String())
			}
			if r.Total != 4 || r.Updated != 4 || r.Failed != 0 {
				t.Fatalf("updated %d/%d, failed %d\n%s", r.Updated, r.Total, r.Failed, out.String())
			}
			if r.PackageKind != fwrepo.PackageDelta || r.PackageSize == 0 || r.PackageSize >= len(o.Firmware.V2)/2 {
				t.Fatalf("package %s of %d bytes for a %d-byte image", r.PackageKind, r.PackageSize, len(o.Firmware.V2))
			}
			if r.BytesSent != 4*int64(r.PackageSize) || r.BytesFull != 4*int64(len(o.Firmware.V2)) {
				t.Fatalf("bytes sent %d, full %d; package %d", r.BytesSent, r.BytesFull, r.PackageSize)
			}
			if len(r.WaveTimes) != 2 {
				t.Fatalf("wave times %v", r.WaveTimes)
			}
			if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
				t.Fatalf("temp dir %s not removed: %v", r.Dir, err)
			}
			var summary bytes.Buffer
			printDemoResult(&summary, o, r)
			lines := strings.Split(strings.TrimSpace(summary.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "demo ok: 4/4 devices on v2, 0 failed; sent ") {
				t.Fatalf("last line %q", last)
			}
		})
	}
}

// The synthetic pair is deterministic, code-like and a real rebuild: v2
// differs from v1 in length and content, and most of v1 still occurs in
// it shifted (so a delta is small but not trivial).
func TestGenerateDemoFirmware(t *testing.T) {
	a := generateDemoFirmware(64<<10, 3)
	b := generateDemoFirmware(64<<10, 3)
	if !bytes.Equal(a.V1, b.V1) || !bytes.Equal(a.V2, b.V2) {
		t.Fatal("not deterministic")
	}
	if len(a.V1) < 32<<10 || len(a.V1) > 128<<10 {
		t.Fatalf("v1 of %d bytes for a 64 KiB request", len(a.V1))
	}
	if bytes.Equal(a.V1, a.V2) {
		t.Fatal("v2 equals v1")
	}
	// A 64-byte window from the end of v1's code is still in v2, elsewhere.
	probe := a.V1[len(a.V1)/2 : len(a.V1)/2+64]
	if i := bytes.Index(a.V2, probe); i < 0 {
		t.Fatal("v2 shares nothing with v1")
	}
	if c := generateDemoFirmware(64<<10, 4); bytes.Equal(c.V1, a.V1) {
		t.Fatal("seed ignored")
	}
}

// The pair is found by name, else the default, else the smallest; a named
// pair that is missing is an error naming it.
func TestLoadDemoFirmware(t *testing.T) {
	dir := t.TempDir()
	write := func(pair string, size int) {
		p := filepath.Join(dir, pair)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"old.bin", "new.bin"} {
			if err := os.WriteFile(filepath.Join(p, f), make([]byte, size), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("big", 300)
	write("small", 100)
	dirs := []string{filepath.Join(dir, "absent"), dir}
	fw, ok, err := loadDemoFirmware(dirs, "")
	if err != nil || !ok || fw.Source != filepath.Join(dir, "small") {
		t.Fatalf("smallest: %v %v %q", ok, err, fw.Source)
	}
	write(defaultDemoPair, 200)
	if fw, _, _ := loadDemoFirmware(dirs, ""); fw.Source != filepath.Join(dir, defaultDemoPair) || len(fw.V2) != 200 {
		t.Fatalf("default: %q", fw.Source)
	}
	if fw, _, _ := loadDemoFirmware(dirs, "big"); len(fw.V1) != 300 {
		t.Fatalf("named: %q", fw.Source)
	}
	if _, _, err := loadDemoFirmware(dirs, "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing named pair: %v", err)
	}
	if _, ok, err := loadDemoFirmware([]string{filepath.Join(dir, "absent")}, ""); ok || err != nil {
		t.Fatalf("no directory: %v %v", ok, err)
	}
}

// The flash of a demo device holds either image in its in-place layout.
func TestDemoFlashGeometry(t *testing.T) {
	for _, n := range []int{1, 4096, 48 << 10, 320016, 700 << 10} {
		g := demoFlashGeometry(n, n-10)
		l, err := inplace.LayoutFor(g)
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if l.ImageSize < n {
			t.Fatalf("%d bytes: image region %d", n, l.ImageSize)
		}
	}
}

// A demo where a device did not end on v2 says so in its last line, which
// the acceptance check and a user read, and runDemo exits non-zero on it.
func TestDemoSummaryReportsFailures(t *testing.T) {
	var out bytes.Buffer
	o := demoOptions{Waves: []float64{20, 100}, Firmware: demoFirmware{V2: make([]byte, 1000)}}
	printDemoResult(&out, o, demoResult{Total: 20, Updated: 18, Failed: 2, BytesSent: 9000, BytesFull: 20000,
		WaveTimes: []time.Duration{time.Second, 2 * time.Second}, TotalTime: 4 * time.Second})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "demo FAILED: 18/20 devices on v2, 2 failed;") {
		t.Fatalf("last line %q", last)
	}
}

// Bad flags are refused with exit status 2 and a message naming the flag,
// before anything starts.
func TestDemoFlags(t *testing.T) {
	for _, args := range [][]string{{"--devices", "0"}, {"--mode", "carrier-pigeon"}, {"--waves", "20,x"}, {"--pair", "no-such-pair", "--firmware-dir", t.TempDir()}} {
		err := runDemo(args)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) && !strings.Contains(err.Error(), args[1]) {
			t.Fatalf("%v: error %q names neither flag nor value", args, err)
		}
	}
}

// BenchmarkDemo20Devices is the demo's wall time for 20 devices on the
// real default pair (skipped without ../shared/firmware): servers,
// bootstrap, registration, the two-wave pull campaign, verification.
func BenchmarkDemo20Devices(b *testing.B) {
	fw, ok, err := loadDemoFirmware([]string{filepath.Join("..", "..", "..", "shared", "firmware")}, defaultDemoPair)
	if err != nil || !ok {
		b.Skipf("../shared/firmware/%s absent: %v", defaultDemoPair, err)
	}
	o := demoOptions{Devices: 20, Mode: campaign.DeliveryPull, Waves: []float64{20, 100}, Concurrency: 10, Firmware: fw,
		Out: io.Discard, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var r demoResult
	for b.Loop() {
		r, err = runDemoJob(context.Background(), o)
		if err != nil || r.Updated != 20 {
			b.Fatalf("updated %d: %v", r.Updated, err)
		}
	}
	b.ReportMetric(ratio(r.BytesSent, r.BytesFull), "%sent/full")
	b.ReportMetric(r.CampaignTime.Seconds(), "campaign-s")
}
