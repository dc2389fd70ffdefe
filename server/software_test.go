package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/software"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/servertest"
	srvsw "github.com/fotastack/fota/server/software"
)

// appDevice is the project's own client with Software Management over
// DTLS-PSK against srv; its applications live in dir.
func appDevice(t *testing.T, srv *servertest.Server, ep string, trusted ed25519.PublicKey) (*software.Object, string) {
	t.Helper()
	dir := t.TempDir()
	key := []byte("app-device-key!!")
	srv.AddPSK(ep, ep+"-id", key)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := client.New(client.Config{
		Endpoint: ep, ServerURI: "coaps://" + srv.CoAPSAddr().String(), PSKIdentity: ep + "-id", PSKKey: key,
		Device:   client.DeviceInfo{Manufacturer: "Fotastack Sim", FirmwareVersion: "1.0", DeviceType: "sim"},
		StateDir: filepath.Join(dir, "state"), Logger: quiet, RequestTimeout: 2 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := software.Open(software.Config{Dir: filepath.Join(dir, "apps"), TrustedKey: trusted, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	software.Attach(c, o)
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Stop(); o.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for srv.Device(ep) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not register", ep)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return o, filepath.Join(dir, "apps")
}

// runApp starts an operation through the API and waits for its job.
func runApp(t *testing.T, srv *servertest.Server, ep, name, op, query string) srvsw.Job {
	t.Helper()
	var j srvsw.Job
	if code := srv.API("POST", "/api/clients/"+ep+"/apps/"+name+"/"+op+"?"+query, nil, &j); code != 202 {
		t.Fatalf("%s %s on %s: status %d", op, name, ep, code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !j.Done {
		if time.Now().After(deadline) {
			t.Fatalf("%s %s on %s: not done after 30 s: %+v", op, name, ep, j)
		}
		time.Sleep(50 * time.Millisecond)
		if code := srv.API("GET", "/api/clients/"+ep+"/apps/"+name+"/job", nil, &j); code != 200 {
			t.Fatalf("job: status %d", code)
		}
	}
	return j
}

func uploadApp(t *testing.T, srv *servertest.Server, name, version string, data []byte) srvsw.App {
	t.Helper()
	code, b := apiRaw(t, srv, "POST", "/api/apps?name="+name+"&version="+version, "application/octet-stream", data)
	if code != 201 {
		t.Fatalf("upload %s %s: %d %s", name, version, code, b)
	}
	a, err := srv.Software.Find(name, version)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func deviceApps(t *testing.T, srv *servertest.Server, ep string) map[string]srvsw.Instance {
	t.Helper()
	var insts []srvsw.Instance
	if code := srv.API("GET", "/api/clients/"+ep+"/apps", nil, &insts); code != 200 {
		t.Fatalf("GET apps of %s: %d", ep, code)
	}
	out := map[string]srvsw.Instance{}
	for _, in := range insts {
		out[in.Name] = in
	}
	return out
}

// Software Management end to end over DTLS with the project's own device:
// two applications in two instances, install by pull, activate, update to
// a new version by push (Uninstall "1" keeps the instance), uninstall; the
// device's /9 and its storage follow each step.
func TestSoftwareManagementRealClient(t *testing.T) {
	srv := servertest.Start(t)
	_, appsDir := appDevice(t, srv, "app-dev", srv.Firmware.PublicKey())
	rng := rand.New(rand.NewSource(9))
	v1, v2, other := make([]byte, 150_000), make([]byte, 90_001), []byte("a small second application")
	rng.Read(v1)
	rng.Read(v2)
	uploadApp(t, srv, "meter-app", "1.2.0", v1)
	uploadApp(t, srv, "meter-app", "1.3.0", v2)
	uploadApp(t, srv, "logger", "0.1", other)
	if code, b := apiRaw(t, srv, "POST", "/api/apps?name=meter-app&version=1.2.0", "application/octet-stream", v1); code != 409 {
		t.Fatalf("the same version again: %d %s, want 409", code, b)
	}
	if code := srv.API("POST", "/api/clients/app-dev/apps/meter-app/install?version=9.9", nil, nil); code != 404 {
		t.Fatalf("install of an unknown version: %d, want 404", code)
	}

	if j := runApp(t, srv, "app-dev", "meter-app", "install", "version=1.2.0"); j.Error != "" {
		t.Fatalf("install by pull: %s", j.Error)
	}
	if j := runApp(t, srv, "app-dev", "logger", "install", "version=0.1&push=true"); j.Error != "" {
		t.Fatalf("install by push: %s", j.Error)
	}
	apps := deviceApps(t, srv, "app-dev")
	m, l := apps["meter-app"], apps["logger"]
	if m.Version != "1.2.0" || m.UpdateState != 4 || m.UpdateResult != 2 || m.Active || l.Version != "0.1" || l.UpdateState != 4 || m.Instance == l.Instance {
		t.Fatalf("after two installs /9 holds %+v", apps)
	}
	installed := func(inst int) []byte {
		b, err := os.ReadFile(filepath.Join(appsDir, itoa(inst), "app.bin"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(installed(m.Instance), v1) || !bytes.Equal(installed(l.Instance), other) {
		t.Fatal("the installed applications differ from what was uploaded")
	}

	if j := runApp(t, srv, "app-dev", "meter-app", "activate", ""); j.Error != "" {
		t.Fatalf("activate: %s", j.Error)
	}
	if !deviceApps(t, srv, "app-dev")["meter-app"].Active {
		t.Fatal("activated, but /9 says inactive")
	}
	// Update in place: the same instance, the new bytes.
	if j := runApp(t, srv, "app-dev", "meter-app", "install", "version=1.3.0&push=true"); j.Error != "" || j.Instance != m.Instance {
		t.Fatalf("update: %+v", j)
	}
	if got := deviceApps(t, srv, "app-dev")["meter-app"]; got.Version != "1.3.0" || got.UpdateState != 4 {
		t.Fatalf("after the update: %+v", got)
	}
	if !bytes.Equal(installed(m.Instance), v2) {
		t.Fatal("the updated application differs from 1.3.0")
	}
	// Activate of what is not installed is refused with the device's reason.
	if j := runApp(t, srv, "app-dev", "nothing", "activate", ""); j.Error == "" {
		t.Fatal("activate of an application the device lacks succeeded")
	}
	if j := runApp(t, srv, "app-dev", "meter-app", "uninstall", ""); j.Error != "" {
		t.Fatalf("uninstall: %s", j.Error)
	}
	apps = deviceApps(t, srv, "app-dev")
	if _, ok := apps["meter-app"]; ok || apps["logger"].UpdateState != 4 {
		t.Fatalf("after uninstall /9 holds %+v", apps)
	}
	if _, err := os.Stat(filepath.Join(appsDir, itoa(m.Instance))); !os.IsNotExist(err) {
		t.Fatalf("the uninstalled application's storage is still there: %v", err)
	}
}

// A device that trusts another key refuses the package before installing
// anything: result 53 (integrity), reported in the job's error.
func TestSoftwareManagementWrongKey(t *testing.T) {
	srv := servertest.Start(t)
	other, _, _ := ed25519.GenerateKey(nil)
	appDevice(t, srv, "app-wrongkey", other)
	uploadApp(t, srv, "meter-app", "1.2.0", []byte("application bytes"))
	j := runApp(t, srv, "app-wrongkey", "meter-app", "install", "version=1.2.0")
	if j.Error == "" || !strings.Contains(j.Error, "53") {
		t.Fatalf("install signed by an untrusted key: %+v, want a failure with result 53", j)
	}
	for _, in := range deviceApps(t, srv, "app-wrongkey") {
		if in.Name != "" || in.UpdateState != 0 || in.UpdateResult != 53 {
			t.Fatalf("after a refused package /9 holds %+v", in)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A campaign whose target is an application version: the engine's waves
// over three real devices, one of which trusts another key and fails (and
// is retried, and fails again); the error threshold lets the campaign end.
func TestAppCampaignRealClients(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) {
		c.Campaign = campaign.Config{Tick: 20 * time.Millisecond, Poll: 50 * time.Millisecond, DeviceTimeout: 30 * time.Second}
	})
	other, _, _ := ed25519.GenerateKey(nil)
	appDevice(t, srv, "fleet-a", srv.Firmware.PublicKey())
	appDevice(t, srv, "fleet-b", srv.Firmware.PublicKey())
	appDevice(t, srv, "fleet-bad", other)
	uploadApp(t, srv, "meter-app", "1.2.0", bytes.Repeat([]byte("meter "), 20000))
	body := map[string]any{"app": "meter-app", "appVersion": "1.2.0", "targets": map[string]any{"endpoints": []string{"fleet-a", "fleet-b", "fleet-bad"}},
		"waves": []float64{34, 100}, "successThreshold": 0.5, "errorThreshold": 0.5, "method": "push", "retries": 1, "retryBackoff": "1s"}
	var st campaign.Status
	jb, _ := json.Marshal(body)
	if code, b := apiRaw(t, srv, "POST", "/api/campaigns", "application/json", jb); code != 201 {
		t.Fatalf("create the application campaign: %d %s", code, b)
	} else if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if code := srv.API("POST", "/api/campaigns", map[string]any{"app": "meter-app", "appVersion": "7"}, nil); code != 400 {
		t.Fatalf("a campaign for an application version not in the repository: %d, want 400", code)
	}
	deadline := time.Now().Add(60 * time.Second)
	for st.State == campaign.Running {
		if time.Now().After(deadline) {
			t.Fatalf("campaign still running: %+v", st.Summary)
		}
		time.Sleep(100 * time.Millisecond)
		srv.API("GET", "/api/campaigns/"+st.ID, nil, &st)
	}
	if st.State != campaign.Completed {
		t.Fatalf("campaign %s: %s", st.State, st.Reason)
	}
	byEP := map[string]campaign.Device{}
	for _, d := range st.Devices {
		byEP[d.Endpoint] = d
	}
	if byEP["fleet-a"].State != campaign.DeviceSucceeded || byEP["fleet-b"].State != campaign.DeviceSucceeded {
		t.Fatalf("devices: %+v", st.Devices)
	}
	if bad := byEP["fleet-bad"]; bad.State != campaign.DeviceFailed || bad.Attempts < 1 || !strings.Contains(bad.Error, "53") {
		t.Fatalf("the device with another key: %+v, want failed after a retry with result 53", bad)
	}
	for _, ep := range []string{"fleet-a", "fleet-b"} {
		if in := deviceApps(t, srv, ep)["meter-app"]; in.Version != "1.2.0" || in.UpdateState != 4 {
			t.Fatalf("%s after the campaign: %+v", ep, in)
		}
	}
}
