package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/server/api"
	"github.com/fotastack/fota/server/servertest"
)

// apiCall is one raw API request: the status, the header and the decoded
// JSON answer.
type apiAnswer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func apiDo(t *testing.T, srv *servertest.Server, method, path, contentType, body string, token bool) apiAnswer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token {
		req.Header.Set("Authorization", "Bearer "+servertest.Token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := apiAnswer{code: resp.StatusCode, header: resp.Header, raw: string(data)}
	_ = json.Unmarshal(data, &a.body)
	return a
}

// checkProblem fails unless a is an RFC 9457 problem with HTTP status want,
// its members consistent, and the "error" member kept for older clients.
func checkProblem(t *testing.T, what string, a apiAnswer, want int) {
	t.Helper()
	if a.code != want {
		t.Fatalf("%s: HTTP %d %s, want %d", what, a.code, a.raw, want)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	b := a.body
	if b["status"] != float64(want) || b["type"] == "" || b["type"] == nil || b["title"] == "" || b["title"] == nil {
		t.Fatalf("%s: not a problem: %s", what, a.raw)
	}
	if d, _ := b["detail"].(string); d == "" || b["error"] != d {
		t.Fatalf("%s: detail %q and error %q should be the same message: %s", what, b["detail"], b["error"], a.raw)
	}
}

// startClient starts the project's LwM2M client (Security, Server, Device,
// Connectivity and Firmware Update objects) over DTLS-PSK and waits until
// the server lists it.
func startClient(t *testing.T, srv *servertest.Server, ep string) *client.Client {
	t.Helper()
	key := []byte("api-client-key!!")
	srv.AddPSK(ep, ep+"-id", key)
	c, err := client.New(client.Config{
		Endpoint: ep, ServerURI: "coaps://" + srv.CoAPSAddr().String(), PSKIdentity: ep + "-id", PSKKey: key,
		Device:   client.DeviceInfo{Manufacturer: "fotastack", FirmwareVersion: "1.0", DeviceType: "sim"},
		StateDir: filepath.Join(t.TempDir(), "state"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RequestTimeout: 2 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		c.Stop()
	})
	waitFor(t, ep+" registered", func() bool { return srv.Device(ep) != nil })
	return c
}

// Every error of the API is an RFC 9457 problem (application/problem+json
// with type, title, status and detail) whose message says what failed and
// what to do: a missing token, an unknown client, a bad parameter, a route
// that does not exist and a method a route does not serve.
func TestAPIErrorsAreProblems(t *testing.T) {
	srv := servertest.Start(t)
	connect(t, srv, "coap", "known")

	a := apiDo(t, srv, "GET", "/api/clients", "", "", false)
	checkProblem(t, "no token", a, http.StatusUnauthorized)
	if a.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}

	a = apiDo(t, srv, "GET", "/api/clients/nobody/3/0/0", "", "", true)
	checkProblem(t, "unknown client", a, http.StatusNotFound)
	if d := a.body["detail"].(string); !strings.Contains(d, `"nobody"`) || !strings.Contains(d, "registers") {
		t.Fatalf("unknown client: detail %q should name the endpoint and say to wait until it registers", d)
	}
	if a.body["deviceCode"] != nil {
		t.Fatalf("unknown client answered as a device error: %s", a.raw)
	}

	a = apiDo(t, srv, "GET", "/api/clients/known/3/0/0?timeout=abc", "", "", true)
	checkProblem(t, "bad timeout", a, http.StatusBadRequest)
	if d := a.body["detail"].(string); !strings.Contains(d, "abc") || !strings.Contains(d, "600") {
		t.Fatalf("bad timeout: detail %q should name the value and the range", d)
	}

	a = apiDo(t, srv, "GET", "/api/clients/known/3/x/0", "", "", true)
	checkProblem(t, "bad path", a, http.StatusBadRequest)

	a = apiDo(t, srv, "GET", "/api/no-such-route", "", "", true)
	checkProblem(t, "unknown route", a, http.StatusNotFound)
	if !strings.Contains(a.body["detail"].(string), "openapi.json") {
		t.Fatalf("unknown route: detail %q should point at the route list", a.body["detail"])
	}

	a = apiDo(t, srv, "PATCH", "/api/clients", "", "", true)
	checkProblem(t, "method not served", a, http.StatusMethodNotAllowed)
	if !strings.Contains(a.header.Get("Allow"), "GET") {
		t.Fatalf("405 Allow = %q", a.header.Get("Allow"))
	}

	a = apiDo(t, srv, "GET", "/api/clients/known/3/0/0/attributes", "", "", true)
	checkProblem(t, "GET on /attributes", a, http.StatusMethodNotAllowed)
	if a.header.Get("Allow") != "PUT" {
		t.Fatalf("405 on attributes: Allow = %q", a.header.Get("Allow"))
	}
}

// A device's error answer is passed through as an HTTP error naming the
// device's CoAP code, not as a 200 carrying it; its success answers stay as
// they were. The device here is the project's own client over DTLS-PSK.
func TestDeviceErrorsPassThrough(t *testing.T) {
	srv := servertest.Start(t)
	startClient(t, srv, "erring")
	base := "/api/clients/erring"

	// Success: unchanged shape.
	a := apiDo(t, srv, "GET", base+"/3/0/0", "", "", true)
	if a.code != 200 || a.body["status"] != "CONTENT" || a.body["content"] != "fotastack" || a.body["success"] != true {
		t.Fatalf("read Manufacturer: HTTP %d %s", a.code, a.raw)
	}
	cases := []struct {
		name, method, path, ct, body string
		http                         int
		device, status               string
	}{
		{"read of a resource the device lacks", "GET", "/3/0/77", "", "", 404, "4.04", "NOT_FOUND"},
		{"read of an object the device lacks", "GET", "/3303", "", "", 404, "4.04", "NOT_FOUND"},
		{"delete of an instance the device lacks", "DELETE", "/1/7", "", "", 404, "4.04", "NOT_FOUND"},
		{"delete of a single-instance object's instance", "DELETE", "/3/0", "", "", 405, "4.05", "METHOD_NOT_ALLOWED"},
		{"read in a format the device does not answer in", "GET", "/3/0/0?format=9999", "", "", 406, "4.06", "NOT_ACCEPTABLE"},
		{"write of a read-only resource", "PUT", "/3/0/0", "application/json", `{"value":"x"}`, 405, "4.05", "METHOD_NOT_ALLOWED"},
		{"execute of a readable resource", "POST", "/3/0/0", "", "", 405, "4.05", "METHOD_NOT_ALLOWED"},
	}
	for _, c := range cases {
		a := apiDo(t, srv, c.method, base+c.path, c.ct, c.body, true)
		checkProblem(t, c.name, a, c.http)
		if a.body["type"] != api.ProblemDeviceError || a.body["deviceCode"] != c.device || a.body["deviceStatus"] != c.status {
			t.Fatalf("%s: %s, want a device error with deviceCode %s", c.name, a.raw, c.device)
		}
		if d := a.body["detail"].(string); !strings.Contains(d, c.device) || !strings.Contains(d, `"erring"`) {
			t.Fatalf("%s: detail %q should name the device and its code", c.name, d)
		}
		if c.http == 405 && a.header.Get("Allow") == "" {
			t.Fatalf("%s: 405 without Allow", c.name)
		}
	}
	// The write was refused by the device, not half applied.
	if a := apiDo(t, srv, "GET", base+"/3/0/0", "", "", true); a.body["content"] != "fotastack" {
		t.Fatalf("Manufacturer after the refused write: %s", a.raw)
	}
}

// A Write, Create or Write-Composite body the device could misread is
// refused with 415 before the device is asked: no Content-Type, a media
// type that is no LwM2M format, or a format the device did not announce
// (the test device announces SenML JSON only). The device is mute, so a
// request that reached it would end in 504 after ?timeout=1: the 415s
// prove it was not asked, and the 504s of bodies it takes prove the check
// lets them through.
func TestUnsupportedBodyRefusedBeforeDevice(t *testing.T) {
	srv := servertest.Start(t)
	d := connect(t, srv, "coap", "picky")
	d.mu.Lock()
	d.silent = true
	d.mu.Unlock()
	base := "/api/clients/picky"
	refused := []struct{ name, method, path, ct, body string }{
		{"write without Content-Type", "PUT", "/1/0/1", "", "600"},
		{"create without Content-Type", "POST", "/1", "", `[{"n":"/1/1/1","v":60}]`},
		{"composite write without Content-Type", "PUT", "/composite", "", `[{"n":"/1/0/1","v":60}]`},
		{"form-encoded body (curl -d without -H)", "PUT", "/1/0/1", "application/x-www-form-urlencoded", "600"},
		{"TLV to a SenML JSON device", "PUT", "/1/0", "application/vnd.oma.lwm2m+tlv", "\xc1\x01\x3c"},
		{"SenML CBOR composite to a SenML JSON device", "PUT", "/composite", "application/senml+cbor", "\x81\xa2\x00\x66/1/0/1\x02\x18\x3c"},
		{"text to an instance", "PUT", "/1/0", "text/plain", "600"},
		{"payload form in a format not announced", "PUT", "/1/0", "application/json", `{"format":"TLV","payload":"wQE8"}`},
	}
	for _, c := range refused {
		start := time.Now()
		a := apiDo(t, srv, c.method, base+c.path+"?timeout=1", c.ct, c.body, true)
		checkProblem(t, c.name, a, http.StatusUnsupportedMediaType)
		if time.Since(start) > 500*time.Millisecond {
			t.Fatalf("%s: took %v: the device was asked", c.name, time.Since(start))
		}
		if a.body["type"] != api.ProblemContentFormat || !strings.Contains(a.header.Get("Accept"), "application/senml+json") {
			t.Fatalf("%s: %s (Accept %q), want the content-format problem naming what the device takes", c.name, a.raw, a.header.Get("Accept"))
		}
	}
	taken := []struct{ name, method, path, ct, body string }{
		{"text to a single resource (mandatory format)", "PUT", "/1/0/1", "text/plain", "600"},
		{"opaque to a single resource (mandatory format)", "PUT", "/1/0/1", "application/octet-stream", "600"},
		{"SenML JSON (announced)", "PUT", "/1/0", "application/senml+json", `[{"n":"/1/0/1","v":60}]`},
		{"JSON value (encoded by the server)", "PUT", "/1/0/1", "application/json", `{"value":600}`},
		{"JSON node (encoded by the server)", "PUT", "/1/0", "application/json", `{"id":0,"kind":"instance","resources":[{"id":1,"kind":"singleResource","value":60}]}`},
	}
	for _, c := range taken {
		a := apiDo(t, srv, c.method, base+c.path+"?timeout=1", c.ct, c.body, true)
		if a.code != http.StatusGatewayTimeout {
			t.Fatalf("%s: HTTP %d %s, want 504 from the mute device", c.name, a.code, a.raw)
		}
	}
}

// An image uploaded as curl --data-binary sends it (Content-Type
// application/x-www-form-urlencoded, parameters in the query) is stored
// whole, not parsed as a form; a multipart upload takes its parameters
// from its fields.
func TestFirmwareUploadAsCurlSendsIt(t *testing.T) {
	srv := servertest.Start(t)
	img := strings.Repeat("firmware image bytes ", 3000)
	a := apiDo(t, srv, "POST", "/api/firmware?deviceType=meter&version=1.0", "application/x-www-form-urlencoded", img, true)
	if a.code != http.StatusCreated || a.body["size"] != float64(len(img)) {
		t.Fatalf("raw upload: HTTP %d %s, want 201 with size %d", a.code, a.raw, len(img))
	}
	var mp strings.Builder
	mp.WriteString("--B\r\nContent-Disposition: form-data; name=\"deviceType\"\r\n\r\nmeter\r\n")
	mp.WriteString("--B\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n2.0\r\n")
	mp.WriteString("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"v2.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n" + img + "x\r\n--B--\r\n")
	a = apiDo(t, srv, "POST", "/api/firmware", "multipart/form-data; boundary=B", mp.String(), true)
	if a.code != http.StatusCreated || a.body["size"] != float64(len(img)+1) || a.body["version"] != "2.0" {
		t.Fatalf("multipart upload: HTTP %d %s", a.code, a.raw)
	}
}
