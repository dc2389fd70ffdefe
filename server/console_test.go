package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/servertest"
)

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// The console page is public and holds no token; the API still wants one;
// health answers without one.
func TestConsoleServedWithoutTokenAPIGuarded(t *testing.T) {
	s := servertest.Start(t)
	code, body := get(t, s.URL+"/", "")
	if code != 200 || !strings.Contains(body, "<!doctype html>") || !strings.Contains(body, `type="password"`) {
		t.Fatalf("GET / = %d %.200q", code, body)
	}
	if strings.Contains(body, servertest.Token) {
		t.Fatal("the console page embeds the API token")
	}
	for _, p := range []string{"/app.js", "/api.js", "/pages.js", "/style.css"} {
		if code, _ := get(t, s.URL+p, ""); code != 200 {
			t.Errorf("GET %s = %d", p, code)
		}
	}
	code, body = get(t, s.URL+"/console/objects.json", "")
	if code != 200 || !strings.Contains(body, `"Manufacturer"`) {
		t.Errorf("objects.json = %d %.200q", code, body)
	}
	if code, _ := get(t, s.URL+"/api/clients", ""); code != 401 {
		t.Errorf("API without token = %d, want 401", code)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, s.URL+p, ""); code != 200 {
			t.Errorf("%s = %d %s", p, code, body)
		}
	}
	// pprof is off unless configured.
	if code, _ := get(t, s.URL+"/debug/pprof/", servertest.Token); code != 404 {
		t.Errorf("pprof without the PProf option = %d, want 404", code)
	}
}

// /metrics has the fota_ metrics, named by Prometheus conventions (the
// library's lint).
func TestMetricsNamesLinted(t *testing.T) {
	s := servertest.Start(t)
	mfs, err := s.Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "fota_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	code, body := get(t, s.URL+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	// What issue 15 lists, present before any device came: registrations
	// and handshakes (counts and latencies), CoAP requests by code, Block2
	// bytes, campaigns, store latency, DTLS sessions live and hibernated.
	for _, want := range []string{"fota_dtls_handshakes_total", "fota_dtls_handshake_duration_seconds", "fota_dtls_sessions", "fota_device_events_total",
		"fota_registration_duration_seconds", "fota_coap_requests_total", "fota_firmware_blocks_served_total", "fota_firmware_served_bytes_total",
		"fota_campaigns", "fota_store_probe_duration_seconds", "fota_store_write_duration_seconds", "fota_coap_retransmissions_total"} {
		if !strings.Contains(body, "# TYPE "+want+" ") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, want := range []string{`fota_dtls_sessions{state="live"} 0`, `fota_dtls_sessions{state="hibernated"} 0`, `fota_registration_duration_seconds_count{kind="register"} 0`, `fota_coap_retransmissions_total{direction="sent"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// With PProf the profiler answers only with the bearer token, never with
// it in the query (tools that fetch profiles log URLs).
func TestPProfBehindToken(t *testing.T) {
	s := servertest.Start(t, func(c *server.Config) { c.PProf = true })
	if code, _ := get(t, s.URL+"/debug/pprof/", ""); code != 401 {
		t.Errorf("pprof without token = %d, want 401", code)
	}
	if code, _ := get(t, s.URL+"/debug/pprof/?token="+servertest.Token, ""); code != 401 {
		t.Errorf("pprof with the token in the query = %d, want 401", code)
	}
	if code, body := get(t, s.URL+"/debug/pprof/", servertest.Token); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof with token = %d %.100q", code, body)
	}
}

// /readyz follows the store: once it cannot be read the server is not
// ready, while /healthz (the process) still answers.
func TestReadyzFollowsStore(t *testing.T) {
	s := servertest.Start(t)
	if code, _ := get(t, s.URL+"/readyz", ""); code != 200 {
		t.Fatalf("/readyz = %d before", code)
	}
	if err := s.Store.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, s.URL+"/readyz", ""); code != 503 {
		t.Errorf("/readyz with the store closed = %d, want 503", code)
	}
	if code, _ := get(t, s.URL+"/healthz", ""); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
}
