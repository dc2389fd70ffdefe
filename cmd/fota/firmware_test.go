package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/servertest"
)

// fota firmware add and fota campaign create|pause|resume|abort against a
// real server's HTTP API.
func TestFirmwareAndCampaignCommands(t *testing.T) {
	srv := servertest.Start(t)
	fw, cm := srv.Firmware, srv.Campaigns
	dir := t.TempDir()
	img := filepath.Join(dir, "v2.bin")
	if err := os.WriteFile(img, []byte("firmware image v2"), 0o600); err != nil {
		t.Fatal(err)
	}
	api := []string{"--url", srv.URL, "--api-token", servertest.Token}
	if err := runFirmware(append([]string{"add", img, "--version", "2.0", "--device-type", "sensor", "--erase-block", "1024"}, api...)); err != nil {
		t.Fatal(err)
	}
	if err := runFirmware(append([]string{"add", img, "--version", "2.0", "--device-type", "sensor"}, api...)); err == nil {
		t.Fatal("duplicate upload accepted")
	}
	if err := runFirmware([]string{"add", img, "--version", "3.0"}); err == nil {
		t.Fatal("add without device type accepted")
	}
	imgs, err := fw.Images()
	if err != nil || len(imgs) != 1 || imgs[0].Size != 17 || fw.Profile("sensor").EraseBlock != 1024 {
		t.Fatalf("images %+v %v", imgs, err)
	}
	if err := runCampaign(append([]string{"create", "--device-type", "sensor", "--version", "2.0", "--endpoints", "a,b",
		"--waves", "50,100", "--window", "22:00-04:00"}, api...)); err != nil {
		t.Fatal(err)
	}
	list := cm.List()
	if len(list) != 1 || list[0].Planned != 2 || len(list[0].Waves) != 2 || list[0].Window.Start != "22:00" {
		t.Fatalf("campaigns %+v", list)
	}
	id := list[0].ID
	for _, step := range []struct{ action, want string }{{"pause", campaign.Paused}, {"resume", campaign.Running}, {"abort", campaign.Aborted}} {
		if err := runCampaign(append([]string{step.action, id}, api...)); err != nil {
			t.Fatal(err)
		}
		if c, _, _ := cm.Campaign(id); c.State != step.want {
			t.Fatalf("after %s: %s", step.action, c.State)
		}
	}
	for _, args := range [][]string{{"status", id}, {"status", id, "--watch"}, {"status"}} {
		if err := runCampaign(append(args, api...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if err := runCampaign(append([]string{"resume", id}, api...)); err == nil {
		t.Fatal("resume of an aborted campaign succeeded")
	}
}

// fota audit lists the calls that changed the server, newest last.
func TestAuditCommand(t *testing.T) {
	srv := servertest.Start(t)
	api := []string{"--url", srv.URL, "--api-token", servertest.Token}
	dir := t.TempDir()
	img := filepath.Join(dir, "v1.bin")
	if err := os.WriteFile(img, []byte("firmware image v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runFirmware(append([]string{"add", img, "--version", "1.0", "--device-type", "sensor"}, api...)); err != nil {
		t.Fatal(err)
	}
	out := captureStdout(t, func() error { return runAudit(append([]string{"--json"}, api...)) })
	var es []map[string]any
	if err := json.Unmarshal([]byte(out), &es); err != nil || len(es) != 1 || es[0]["action"] != "POST /api/firmware" || es[0]["status"] != 201.0 {
		t.Fatalf("audit --json: %v %s", err, out)
	}
	if err := runAudit([]string{"extra"}); err == nil {
		t.Fatal("an argument was accepted")
	}
}

// captureStdout runs fn with os.Stdout redirected to a pipe and returns
// what it printed.
func captureStdout(t *testing.T, fn func() error) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	ferr := fn()
	os.Stdout = old
	w.Close()
	out := <-done
	if ferr != nil {
		t.Fatalf("%v (printed %s)", ferr, out)
	}
	return string(out)
}
