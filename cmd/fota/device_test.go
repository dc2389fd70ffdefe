package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/server/servertest"
)

// deviceEnv points a child fota at the test server.
func deviceEnv(srv *servertest.Server) []string {
	return []string{"FOTA_URL=" + srv.URL, "FOTA_API_TOKEN=" + servertest.Token}
}

// startTestDevice registers a real `fota client` with srv over plain CoAP.
func startTestDevice(t *testing.T, srv *servertest.Server, ep string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	stop := startClient(ctx, []string{"--endpoint", ep, "--server", "coap://" + srv.CoAPAddr().String(), "--firmware-version", "1.2.3"})
	t.Cleanup(func() { _ = stop() })
	if err := waitRegistered(ctx, srv.Server, []string{ep}, "1.2.3", 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// `fota device` against a real server and a real device: names from the
// object registry, values as text, --json the API's JSON, and a device's
// error answer an error exit rather than a value.
func TestDeviceCommands(t *testing.T) {
	srv := servertest.Start(t)
	const ep = "dev-cli-1"
	startTestDevice(t, srv, ep)
	env := deviceEnv(srv)
	fota := func(args ...string) fotaResult {
		t.Helper()
		return runFota(t, 60*time.Second, env, args...)
	}
	ok := func(args ...string) string {
		t.Helper()
		r := fota(args...)
		if r.code != 0 {
			t.Fatalf("fota %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}

	t.Run("list", func(t *testing.T) {
		if out := ok("device", "list"); !regexp.MustCompile(`(?m)^` + ep + `\s+1\.\d\s+U\s`).MatchString(out) {
			t.Errorf("device list:\n%s", out)
		}
		var list []map[string]any
		if err := json.Unmarshal([]byte(ok("device", "list", "--json")), &list); err != nil || len(list) != 1 || list[0]["endpoint"] != ep {
			t.Errorf("device list --json: %v %v", list, err)
		}
	})
	t.Run("show", func(t *testing.T) {
		out := ok("device", "show", ep)
		for _, want := range []string{"endpoint      " + ep, "/3/0       Device", "/5/0       Firmware Update"} {
			if !strings.Contains(out, want) {
				t.Errorf("device show lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("read", func(t *testing.T) {
		// One resource: its value alone, so that scripts can use it.
		if out := ok("device", "read", ep, "/3/0/3"); out != "1.2.3\n" {
			t.Errorf("read /3/0/3 = %q, want the firmware version", out)
		}
		out := ok("device", "read", ep, "/3/0")
		for _, re := range []string{`(?m)^/3/0/0\s+Manufacturer\s+fotastack$`, `(?m)^/3/0/3\s+Firmware Version\s+1\.2\.3$`, `(?m)^/3/0/2\s+Serial Number\s+` + ep + `$`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("read /3/0 does not match %s:\n%s", re, out)
			}
		}
		var r struct {
			Success bool `json:"success"`
			Entries []struct {
				Path  string `json:"path"`
				Value any    `json:"value"`
			} `json:"entries"`
		}
		if err := json.Unmarshal([]byte(ok("device", "read", ep, "/3/0/0", "--json")), &r); err != nil || !r.Success || len(r.Entries) != 1 || r.Entries[0].Value != "fotastack" {
			t.Errorf("read --json: %+v, %v", r, err)
		}
	})
	t.Run("device errors are errors", func(t *testing.T) {
		r := fota("device", "read", ep, "/3/0/99")
		if r.code == 0 || !strings.Contains(r.stderr, "4.04") || r.stdout != "" {
			t.Errorf("read of a missing resource: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		// Manufacturer is read-only: 4.05 from the device.
		r = fota("device", "write", ep, "/3/0/0", "someone")
		if r.code == 0 || !strings.Contains(r.stderr, "4.05") || !strings.Contains(r.stderr, "/3/0/0") {
			t.Errorf("write of a read-only resource: exit %d, stderr %q", r.code, r.stderr)
		}
		r = fota("device", "read", "no-such-device", "/3/0/0")
		if r.code == 0 || !strings.Contains(r.stderr, "no-such-device") {
			t.Errorf("read on an unknown endpoint: exit %d, stderr %q", r.code, r.stderr)
		}
		r = fota("device", "read", ep, "/not/a/path")
		if r.code != 2 {
			t.Errorf("a bad path: exit %d, want 2 (%q)", r.code, r.stderr)
		}
	})
	t.Run("write and observe", func(t *testing.T) {
		// The observer runs in the background; the write must reach it as
		// a notification with the new value.
		done := make(chan fotaResult, 1)
		go func() { done <- runFota(t, 60*time.Second, env, "device", "observe", ep, "/3/0/15", "--count", "1") }()
		// The observation exists once the registration lists it.
		deadline := time.Now().Add(20 * time.Second)
		for !observed(t, srv, ep, "/3/0/15") {
			if time.Now().After(deadline) {
				t.Fatal("the observation of /3/0/15 never appeared")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if out := ok("device", "write", ep, "/3/0/15", "Europe/Berlin"); !strings.Contains(out, "Timezone") {
			t.Errorf("write: %q", out)
		}
		r := <-done
		if r.code != 0 {
			t.Fatalf("observe: exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 || !strings.HasSuffix(lines[0], "/3/0/15 Timezone: UTC") || !strings.HasSuffix(lines[1], "/3/0/15 Timezone: Europe/Berlin") {
			t.Errorf("observe printed:\n%s", r.stdout)
		}
		// Ours, so cancelled at the end.
		if observed(t, srv, ep, "/3/0/15") {
			t.Error("the observation is left behind after observe ended")
		}
		if out := ok("device", "read", ep, "/3/0/15"); out != "Europe/Berlin\n" {
			t.Errorf("read after write: %q", out)
		}
	})
	t.Run("exec", func(t *testing.T) {
		// Registration Update Trigger (/1/0/8): the device sends an Update.
		if out := ok("device", "exec", ep, "/1/0/8"); !strings.Contains(out, "executed /1/0/8 Registration Update Trigger") {
			t.Errorf("exec: %q", out)
		}
		if r := fota("device", "exec", ep, "/3/0/0"); r.code == 0 {
			t.Errorf("exec of a readable resource succeeded: %q", r.stdout)
		}
	})
	t.Run("discover", func(t *testing.T) {
		out := ok("device", "discover", ep, "/3")
		if !regexp.MustCompile(`(?m)^/3/0/0\s+Manufacturer$`).MatchString(out) {
			t.Errorf("discover /3:\n%s", out)
		}
	})
	t.Run("history", func(t *testing.T) {
		r := fota("device", "history", ep, "--json")
		switch {
		case r.code == 0:
			var list []map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
				t.Errorf("history --json does not parse: %v\n%s", err, r.stdout)
			}
		case !strings.Contains(r.stderr, "keeps no device history"):
			// A server without the history route must say so plainly.
			t.Errorf("history: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// observed reports whether the registration of ep lists an observation
// of path alone.
func observed(t *testing.T, srv *servertest.Server, ep, path string) bool {
	t.Helper()
	var c struct {
		Observations []struct {
			Paths []string `json:"paths"`
		} `json:"observations"`
	}
	srv.API("GET", "/api/clients/"+ep, nil, &c)
	for _, o := range c.Observations {
		if len(o.Paths) == 1 && o.Paths[0] == path {
			return true
		}
	}
	return false
}
