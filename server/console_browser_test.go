package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fotastack/fota/server/servertest"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/bolt"
)

// unlabeled lists the page's form controls that have no accessible name
// (a label, aria-label, or a button's text): each one a control a screen
// reader announces as nothing.
func unlabeled(t *testing.T, ctx context.Context) []string {
	t.Helper()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('input, select, textarea, button')]
		.filter((e) => e.offsetParent !== null && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
		.map((e) => e.outerHTML.slice(0, 120))`))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// prefillFleet stores n registrations (endpoints fleet-000 ...) in the
// database file, as a server that had them before a restart: the console
// must page through them.
func prefillFleet(t *testing.T, path string, n int) {
	t.Helper()
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		sec := "none"
		if i%2 == 1 {
			sec = "psk"
		}
		if err := st.PutRegistration(store.Registration{ID: fmt.Sprintf("fleet%03d", i), Endpoint: fmt.Sprintf("fleet-%03d", i), Lifetime: 86400, Version: "1.1",
			Binding: "U", Links: "</3/0>", Address: "127.0.0.1:9", Transport: "coaps", Security: sec, Created: now, Updated: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// setField sets a control's value and fires the event a user's change
// would.
func setField(t *testing.T, ctx context.Context, id, value, event string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q; return e.dispatchEvent(new Event(%q)); })()`, id, value, event)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
		t.Fatal(err)
	}
}

// rowCount is the number of rows of the devices table.
func rowCount(t *testing.T, ctx context.Context) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('main table tbody tr').length`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

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

// artifactDir is where screenshots go: $FOTA_ARTIFACTS (or the older
// $FOTA_SCREENSHOTS) for CI to keep, else the test's temporary directory;
// the test log names it.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FOTA_ARTIFACTS")
	if dir == "" {
		dir = os.Getenv("FOTA_SCREENSHOTS")
	}
	if dir == "" {
		dir = t.TempDir()
	} else {
		dir = filepath.Join(dir, t.Name())
	}
	return dir
}

var shotDirs sync.Map // test name -> its artifact directory

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	d, loaded := shotDirs.LoadOrStore(t.Name(), artifactDir(t))
	dir := d.(string)
	if !loaded {
		t.Logf("screenshots in %s", dir)
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
	db := filepath.Join(t.TempDir(), "fota.db")
	prefillFleet(t, db, 120)
	e := startCampaigns(t, db)
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
	// The list is paged by the server: 50 of the 120 stored devices,
	// the next 50 behind Next, and a search or filter asks the server.
	waitText(t, ctx, "Devices 1–50 · 120 registered")
	if n := rowCount(t, ctx); n != 50 {
		t.Fatalf("first page shows %d rows, want 50", n)
	}
	if err := chromedp.Do(ctx, chromedp.Click("#next")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "Devices 51–100 · 120 registered")
	waitText(t, ctx, "fleet-099")
	if err := chromedp.Do(ctx, chromedp.SendKeys("#filter", "FLEET-11")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "Devices 1–10 · 120 registered")
	setField(t, ctx, "f-security", "psk", "change")
	waitText(t, ctx, "Devices 1–5 · 120 registered")
	if text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); strings.Contains(text, "fleet-110") || !strings.Contains(text, "fleet-111") {
		t.Fatalf("psk devices matching fleet-11: %.600s", text)
	}
	shot(t, ctx, "devices-filtered")
	if bad := unlabeled(t, ctx); len(bad) > 0 {
		t.Errorf("devices page: controls without a label: %v", bad)
	}
	// Back to all devices: clearing the search and filter goes to page 1.
	setField(t, ctx, "f-security", "", "change")
	setField(t, ctx, "filter", "", "input")
	waitText(t, ctx, "Devices 1–50 · 120 registered")
	const ep = "console-dev-1"
	startRealDevice(t, e, ep, "1.0", v1)
	// It sorts first (c < f): the event stream brings it into this page.
	waitText(t, ctx, ep)
	waitText(t, ctx, "121 registered")
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
	// Observe: with pmax=1 the device notifies its clock every second,
	// and the value cell follows the notifications without a reload.
	if code := e.srv.API("PUT", "/api/clients/"+ep+"/3/0/13/attributes?pmax=1", nil, nil); code != 200 {
		t.Fatalf("write attributes pmax=1 on /3/0/13: %d", code)
	}
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const b = [...document.querySelectorAll('tr[data-path="/3/0/13"] button')].find((b) => b.textContent === 'Observe'); b && b.click(); return !!b; })()`)); err != nil || !ok {
		t.Fatalf("no Observe button on /3/0/13: %v", err)
	}
	var first string
	waitFor(t, "first observed value", func() bool {
		first, _ = chromedp.Run(ctx, chromedp.Text(`tr[data-path="/3/0/13"] td.val`))
		return first != "" && first != "…"
	})
	waitFor(t, "a notification to change the observed value", func() bool {
		got, _ = chromedp.Run(ctx, chromedp.Text(`tr[data-path="/3/0/13"] td.val`))
		return got != first && got != "" && got != "…"
	})
	waitText(t, ctx, "History")
	waitText(t, ctx, "registered: LwM2M 1.1")
	shot(t, ctx, "device")
	// Stop ends the observation on the device and on the server.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const b = document.querySelector('tr[data-path="/3/0/13"] button[aria-pressed="true"]'); b.click(); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the observation cancelled", func() bool {
		var c struct{ Observations []any }
		return e.srv.API("GET", "/api/clients/"+ep, nil, &c) == 200 && len(c.Observations) == 0
	})

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
	if bad := unlabeled(t, ctx); len(bad) > 0 {
		t.Errorf("campaign page: controls without a label: %v", bad)
	}

	// The campaign made a delta package: the firmware page lists it with
	// its size against the full image.
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"#/firmware"), chromedp.WaitVisible("#fw-file")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "delta")
	if text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('main table tbody tr')].map((r) => r.innerText).join('\n')`)); !regexp.MustCompile(`delta\s+1\.0\s+2\.0\s+[\d,.]+ B\s+\d+\.\d %`).MatchString(text) {
		t.Errorf("firmware page: no delta package row with its size against the full image:\n%s", text)
	}
	shot(t, ctx, "firmware-packages")
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"#/campaigns")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "100 % (1/1)")
	shot(t, ctx, "campaigns")

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

	// A phone's width: nothing may push a page wider than the screen
	// (tables scroll inside their own box), and every control is labelled.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 740)); err != nil {
		t.Fatal(err)
	}
	for _, pg := range []struct{ name, hash, ready string }{
		{"devices", "#/devices", "121 registered"}, {"device", "#/device/" + ep, "Device /3/0"}, {"firmware", "#/firmware", "Packages"},
		{"campaigns", "#/campaigns", "New campaign"}, {"bootstrap", "#/bootstrap", "Bootstrap"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(url+pg.hash)); err != nil {
			t.Fatal(err)
		}
		waitText(t, ctx, pg.ready)
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if width > 360 {
			wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 360.5)
				.map((e) => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)`))
			t.Errorf("at 360 px the %s page is %d px wide; too wide: %v", pg.name, width, wide)
		}
		if bad := unlabeled(t, ctx); len(bad) > 0 {
			t.Errorf("%s page: controls without a label: %v", pg.name, bad)
		}
		shot(t, ctx, pg.name+"-360px")
	}
}
