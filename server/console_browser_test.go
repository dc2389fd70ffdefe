package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fotastack/fota/server/servertest"
)

// browser starts Debian's chromium headless with a fresh profile; without
// it the test skips, unless FOTA_INTEROP_REQUIRED=1 says it must run.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		msg := "no chromium: apt-get install chromium"
		if os.Getenv("FOTA_INTEROP_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true)}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

// waitText waits until the page's text contains want.
func waitText(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	var text string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var err error
		if text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text, want) {
			return
		}
	}
	t.Fatalf("the page never showed %q; it showed %.400q", want, text)
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("FOTA_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleBrowser drives the console in headless Chromium: a wrong
// token is refused with a message, the right one shows the devices, a real
// device appears when it registers, /3/0/0 is read and a resource written
// and read back, and a campaign started from the page reaches 100 %.
func TestConsoleBrowser(t *testing.T) {
	ctx := browser(t)
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
	v1, v2 := testImages(20<<10, 5)
	if _, err := e.fw.AddImage("sim", "1.0", v1, false); err != nil {
		t.Fatal(err)
	}
	img2, err := e.fw.AddImage("sim", "2.0", v2, false)
	if err != nil {
		t.Fatal(err)
	}
	url := e.srv.URL + "/"

	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", "wrong-token"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "Sign-in failed")
	shot(t, ctx, "signin-error")

	if err := chromedp.Do(ctx, chromedp.SendKeys("#token", servertest.Token+kb.Enter), chromedp.WaitVisible("#filter")); err != nil {
		t.Fatal(err)
	}
	const ep = "console-dev-1"
	startRealDevice(t, e, ep, "1.0", v1)
	waitText(t, ctx, ep)
	shot(t, ctx, "devices")

	// The manufacturer as the API reads it is what the page must show.
	code, body := get(t, e.srv.URL+"/api/clients/"+ep+"/3/0/0", servertest.Token)
	var res struct{ Content string }
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || res.Content != "Fotastack Sim" {
		t.Fatalf("API read /3/0/0: %d %s", code, body)
	}
	maker := res.Content
	var got string
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"#/device/"+ep), chromedp.WaitVisible(`tr[data-path="/3/0/0"] button`),
		chromedp.Click(`tr[data-path="/3/0/0"] button`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "manufacturer shown", func() bool {
		got, _ = chromedp.Run(ctx, chromedp.Text(`tr[data-path="/3/0/0"] td.val`))
		return got == maker && got != "…"
	})
	if err := chromedp.Do(ctx, chromedp.SendKeys(`tr[data-path="/3/0/15"] input`, "Europe/Berlin"),
		chromedp.Click(`tr[data-path="/3/0/15"] button[type=button]:last-of-type`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "written value read back", func() bool {
		got, _ = chromedp.Run(ctx, chromedp.Text(`tr[data-path="/3/0/15"] td.val`))
		return got == "Europe/Berlin"
	})
	shot(t, ctx, "device")

	if err := chromedp.Do(ctx, chromedp.Navigate(url+"#/firmware"), chromedp.WaitVisible("#fw-file")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "2.0")
	shot(t, ctx, "firmware")

	if err := chromedp.Do(ctx, chromedp.Navigate(url+"#/campaigns"), chromedp.WaitVisible("#c-image"),
		chromedp.SetValue("#c-image", img2.ID), chromedp.SendKeys("#c-endpoints", ep),
		chromedp.Click(`#c-start`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "Progress: 100 %")
	shot(t, ctx, "campaign")

	// What the campaign did shows in /metrics: the device registered,
	// handshook, downloaded blocks, and is a succeeded campaign device.
	_, m := get(t, e.srv.URL+"/metrics", "")
	for _, re := range []string{`fota_device_events_total\{type="REGISTRATION"\} [1-9]`, `fota_dtls_handshakes_total [1-9]`, `fota_coap_requests_total\{code="2.05"\} [1-9]`, `fota_dtls_handshake_duration_seconds_count [1-9]`,
		`fota_firmware_blocks_served_total [1-9]`, `fota_firmware_served_bytes_total [1-9]`, `fota_campaign_devices\{state="succeeded"\} 1`,
		`fota_registration_duration_seconds_count\{kind="register"\} [1-9]`, `fota_store_write_duration_seconds_count [1-9]`} {
		if !regexp.MustCompile(re).MatchString(m) {
			t.Errorf("/metrics does not match %s", re)
		}
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(url+"#/bootstrap")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "Bootstrap")
	shot(t, ctx, "bootstrap")

	// A phone's width: nothing may push the page wider than the screen
	// (tables scroll inside their own box).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 740), chromedp.Navigate(url+"#/device/"+ep),
		chromedp.WaitVisible(`tr[data-path="/3/0/0"]`)); err != nil {
		t.Fatal(err)
	}
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if width > 360 {
		t.Errorf("at 360 px the device page is %d px wide", width)
	}
	shot(t, ctx, "device-360px")
}
