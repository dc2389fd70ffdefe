package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/fotastack/fota/client/fleet"
	"github.com/fotastack/fota/client/linksim"
	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/store/bolt"
)

// The path of `fota bench fleet --campaign`, in one process: v1 and v2 in
// the server's repository, five fleet devices started with the `fota
// fleet` flags it hands over (in-memory flash running v1, Firmware Update
// object), a delta pull campaign over coaps through each device's
// simulated link (lte-m with shortened delays and faster rates). Every
// device must end with a flash that boots exactly v2.
func TestBenchCampaignUpdatesFleetOverSimulatedLink(t *testing.T) {
	const n = 5
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "fota.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(server.Config{Store: st, HTTPAddr: "127.0.0.1:0", APIToken: "t", Config: dm.Config{CoAPSAddr: "127.0.0.1:0", Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	prefix := "camp-"
	if err := provisionStore(st, prefix, n); err != nil {
		t.Fatal(err)
	}
	prof, _ := linksim.Lookup("lte-m")
	prof.Latency, prof.Jitter, prof.ReorderDelay = 10*time.Millisecond, 5*time.Millisecond, 5*time.Millisecond
	prof.UpRate, prof.DownRate, prof.Burst = 4_000_000, 4_000_000, 32<<10

	var out bytes.Buffer
	bc, args, err := prepareBenchCampaign(srv, dir, prof, &out)
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	fl := addFleetFlashFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("fleet flags %q: %v", args, err)
	}
	ff, err := fl.open(prof, log)
	if err != nil || ff == nil {
		t.Fatalf("fleet flash from %q: %v", args, err)
	}
	defer ff.close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := fleet.Config{Devices: n, ServerURI: "coaps://" + srv.CoAPSAddr().String(), PSKPrefix: prefix, Profile: prof, Seed: 3, Logger: log}
	ff.configure(ctx, &cfg)
	f, err := fleet.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if err := f.WaitRegistered(ctx, n); err != nil {
		t.Fatal(err)
	}
	eps := make([]string, n)
	for i := range eps {
		eps[i], _, _ = fleet.Credentials(prefix, i)
	}
	res, err := bc.run(ctx, eps, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Succeeded != n || res.To99 <= 0 || res.PackageKind != "delta" || res.PackageSize <= 0 {
		t.Fatalf("campaign result %+v\n%s", res, out.String())
	}
	f.Stop()
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if len(ff.flashes) != n {
		t.Fatalf("%d flashes for %d devices", len(ff.flashes), n)
	}
	for i, fl := range ff.flashes {
		img, rec, err := inplace.Image(fl)
		if err != nil || rec.Version != demoV2 || !bytes.Equal(img, bc.fw.V2) {
			t.Errorf("device %d: flash boots %q (%d bytes, err %v), want exactly v2", i, rec.Version, len(img), err)
		}
	}
	t.Logf("%s", out.String())
}
