package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/servertest"
)

var testKey = []byte("secret-psk-key-1")

// connect registers a test device over the given transport ("coap" or
// "coaps"), adding PSK credentials for coaps.
func connect(t *testing.T, srv *servertest.Server, scheme, ep string) *testDevice {
	t.Helper()
	d := newTestDevice(t, ep)
	if scheme == "coaps" {
		srv.AddPSK(ep, ep+"-id", testKey)
		if err := d.dialPSK(srv.CoAPSAddr(), ep+"-id", testKey); err != nil {
			t.Fatalf("dtls handshake: %v", err)
		}
	} else {
		d.dialPlain(srv.CoAPAddr())
	}
	if r := d.register(); r.Code != codes.Created {
		t.Fatalf("register %s: %v", ep, r.Code)
	}
	return d
}

// LwM2M Core 6.2: Register, Update, De-register over CoAP and DTLS-PSK,
// with the client listed by the API in between.
func TestRegistrationInterface(t *testing.T) {
	for _, scheme := range []string{"coap", "coaps"} {
		t.Run(scheme, func(t *testing.T) {
			srv := servertest.Start(t)
			ev, cancel := srv.Events().Subscribe(64)
			defer cancel()
			d := connect(t, srv, scheme, "dev-"+scheme)
			waitEvent(t, ev, events.Registration, d.ep)
			var c map[string]any
			if code := srv.API("GET", "/api/clients/"+d.ep, nil, &c); code != 200 {
				t.Fatalf("GET client: %d", code)
			}
			if c["transport"] != scheme || c["secure"] != (scheme == "coaps") || c["lwM2mVersion"] != "1.1" {
				t.Fatalf("client = %v", c)
			}
			if scheme == "coaps" && (c["security"] != "psk" || c["identity"] != d.ep+"-id") {
				t.Fatalf("security of session: %v", c)
			}
			if code := d.update("lt=600"); code != codes.Changed {
				t.Fatalf("update: %v", code)
			}
			waitEvent(t, ev, events.Updated, d.ep)
			if got := srv.Device(d.ep).Registration().Lifetime; got != 600 {
				t.Fatalf("lifetime after update = %d", got)
			}
			if code := d.deregister(); code != codes.Deleted {
				t.Fatalf("deregister: %v", code)
			}
			waitEvent(t, ev, events.Deregistration, d.ep)
			if srv.Device(d.ep) != nil {
				t.Fatal("still registered after de-register")
			}
			regs, _ := srv.Store.Registrations()
			if len(regs) != 0 {
				t.Fatalf("store still holds %d registrations", len(regs))
			}
			if code := d.update(); code != codes.NotFound {
				t.Fatalf("update after de-register: %v, want 4.04", code)
			}
		})
	}
}

// Bad input: each gets the right CoAP code and leaves no registration.
func TestRegisterBadInput(t *testing.T) {
	srv := servertest.Start(t)
	d := newTestDevice(t, "bad").dialPlain(srv.CoAPAddr())
	cases := []struct {
		name    string
		q       []string
		payload []byte
		want    codes.Code
	}{
		{"missing ep", []string{"lt=60"}, []byte("</1/0>"), codes.BadRequest},
		{"bad lt", []string{"ep=x", "lt=abc"}, []byte("</1/0>"), codes.BadRequest},
		{"zero lt", []string{"ep=x", "lt=0"}, []byte("</1/0>"), codes.BadRequest},
		{"bad version", []string{"ep=x", "lwm2m=9.9"}, []byte("</1/0>"), codes.BadRequest},
		{"bad links", []string{"ep=x"}, []byte("garbage"), codes.BadRequest},
		{"oversized payload", []string{"ep=x"}, []byte("</1/0>," + strings.Repeat("</3/0>,", 3000)), codes.RequestEntityTooLarge},
	}
	for _, c := range cases {
		r, err := d.post("/rd", c.q, c.payload)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Code != c.want {
			t.Errorf("%s: got %v, want %v", c.name, r.Code, c.want)
		}
	}
	if n := len(srv.Devices()); n != 0 {
		t.Fatalf("%d devices registered from bad input", n)
	}
	// Unknown query parameters are ignored.
	if r, _ := d.post("/rd", []string{"ep=ok", "foo=bar"}, []byte("</1/0>")); r.Code != codes.Created {
		t.Fatalf("unknown parameter: %v", r.Code)
	}
}

// LwM2M Core 7.2.1: no impersonation. A PSK identity of one endpoint
// cannot register another; plain CoAP cannot register an endpoint that has
// credentials; a wrong key fails the handshake.
func TestIdentityChecks(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddPSK("alice", "alice-id", testKey)
	srv.AddPSK("bob", "bob-id", []byte("bob-key"))

	d := newTestDevice(t, "bob")
	if err := d.dialPSK(srv.CoAPSAddr(), "alice-id", testKey); err != nil {
		t.Fatal(err)
	}
	if r := d.register(); r.Code != codes.Forbidden {
		t.Fatalf("alice's identity registering bob: %v, want 4.03", r.Code)
	}
	p := newTestDevice(t, "alice").dialPlain(srv.CoAPAddr())
	if r := p.register(); r.Code != codes.Forbidden {
		t.Fatalf("plain CoAP for an endpoint with credentials: %v, want 4.03", r.Code)
	}
	w := newTestDevice(t, "alice")
	if err := w.dialPSK(srv.CoAPSAddr(), "alice-id", []byte("wrong")); err == nil {
		t.Fatal("handshake with a wrong key succeeded")
	}
	u := newTestDevice(t, "carol")
	if err := u.dialPSK(srv.CoAPSAddr(), "nobody", testKey); err == nil {
		t.Fatal("handshake with an unknown identity succeeded")
	}
	if n := len(srv.Devices()); n != 0 {
		t.Fatalf("%d devices registered", n)
	}
}

// LwM2M Core 6.3 and 6.4: every device management operation through the
// HTTP API, over plain CoAP and over DTLS-PSK.
func TestDeviceManagement(t *testing.T) {
	for _, scheme := range []string{"coap", "coaps"} {
		t.Run(scheme, func(t *testing.T) {
			srv := servertest.Start(t)
			d := connect(t, srv, scheme, "dm-"+scheme)
			ev, cancel := srv.Events().Subscribe(64)
			defer cancel()
			base := "/api/clients/" + d.ep
			var r map[string]any
			call := func(method, path string, body any) map[string]any {
				t.Helper()
				r = nil
				if code := srv.API(method, base+path, body, &r); code != 200 {
					t.Fatalf("%s %s: HTTP %d %v", method, path, code, r)
				}
				return r
			}
			// Read a resource: text.
			if got := call("GET", "/3/0/0", nil); got["content"] != "fotastack" || got["status"] != "CONTENT" {
				t.Fatalf("read: %v", got)
			}
			// Read an instance: the device's best announced format is asked for.
			if got := call("GET", "/3/0", nil); got["contentFormat"] != float64(110) {
				t.Fatalf("read instance: %v", got)
			}
			// Discover.
			if got := call("GET", "/3/0/discover", nil); !strings.Contains(fmt.Sprint(got["content"]), "</3/0/1>") {
				t.Fatalf("discover: %v", got)
			}
			// Write (replace) and partial update.
			call("PUT", "/3/0/1", map[string]any{"value": "new-model"})
			if d.get("/3/0/1") != "new-model" {
				t.Fatalf("write did not reach the device: %q", d.get("/3/0/1"))
			}
			call("POST", "/1/0?replace=false", nil) // instance POST without body = partial update
			// Write-Attributes.
			call("PUT", "/3/0/9/attributes?pmin=1&pmax=30&gt=50", nil)
			d.mu.Lock()
			attrs := strings.Join(d.attrs["/3/0/9"], "&")
			d.mu.Unlock()
			if attrs != "gt=50&pmax=30&pmin=1" {
				t.Fatalf("attributes on device: %q", attrs)
			}
			// Execute with arguments.
			call("POST", "/3/0/4", "0='reboot'")
			d.mu.Lock()
			args := d.execArgs["/3/0/4"]
			d.mu.Unlock()
			if args != `"0='reboot'"` {
				t.Fatalf("execute args on device: %q", args)
			}
			// Create and Delete.
			if got := call("POST", "/9", map[string]any{"value": "x"}); got["status"] != "CREATED" {
				t.Fatalf("create: %v", got)
			}
			if got := call("DELETE", "/1/0", nil); got["status"] != "DELETED" {
				t.Fatalf("delete: %v", got)
			}
			d.set("/1/0/1", "300")
			// Read-Composite and Write-Composite.
			got := call("GET", "/composite?paths=/3/0/0,/1/0/1", nil)
			if b, _ := json.Marshal(got["content"]); !strings.Contains(string(b), `"/1/0/1"`) || !strings.Contains(string(b), `"/3/0/0"`) {
				t.Fatalf("read composite: %v", got)
			}
			call("PUT", "/composite", map[string]any{"format": "SENML_JSON", "payload": []byte(`[{"n":"/3/0/1","vs":"m2"},{"n":"/1/0/1","vs":"600"}]`)})
			if d.get("/3/0/1") != "m2" || d.get("/1/0/1") != "600" {
				t.Fatalf("write composite: %q %q", d.get("/3/0/1"), d.get("/1/0/1"))
			}
			// Observe, notify, cancel.
			call("POST", "/3/0/9/observe", nil)
			d.set("/3/0/9", "42")
			if err := d.notify("/3/0/9"); err != nil {
				t.Fatalf("notification not acknowledged: %v", err)
			}
			e := waitEvent(t, ev, events.Notification, d.ep)
			if b, _ := json.Marshal(e.Data); !strings.Contains(string(b), `"content":"42"`) {
				t.Fatalf("notification event: %s", b)
			}
			call("DELETE", "/3/0/9/observe", nil)
			if d.observerOf("/3/0/9") != nil {
				t.Fatal("device still has the observer after cancel")
			}
			if len(srv.Observations(d.ep)) != 0 {
				t.Fatal("server still holds the observation after cancel")
			}
			// Observe-Composite.
			call("POST", "/composite/observe?paths=/3/0/9,/1/0/1", nil)
			d.set("/3/0/9", "43")
			if err := d.notify("composite:/3/0/9,/1/0/1"); err != nil {
				t.Fatal(err)
			}
			e = waitEvent(t, ev, events.Notification, d.ep)
			if b, _ := json.Marshal(e.Data); !strings.Contains(string(b), `"vs":"43"`) {
				t.Fatalf("composite notification: %s", b)
			}
			// Send from the device.
			if r, err := d.post("/dp", nil, []byte(`[{"n":"/3/0/9","v":44}]`)); err != nil || r.Code != codes.Changed {
				t.Fatalf("send: %v %v", r, err)
			}
			waitEvent(t, ev, events.Send, d.ep)
			// Unknown device and unknown resource.
			if code := srv.API("GET", "/api/clients/nobody/3/0/0", nil, nil); code != 404 {
				t.Fatalf("unknown device: HTTP %d", code)
			}
			// The device's 4.04 is an HTTP error naming the device's code,
			// not a 200 carrying it.
			var nf map[string]any
			if code := srv.API("GET", base+"/3/0/77", nil, &nf); code != http.StatusNotFound || nf["deviceCode"] != "4.04" || nf["status"] != float64(404) {
				t.Fatalf("unknown resource: HTTP %d %v, want 404 with deviceCode 4.04", code, nf)
			}
		})
	}
}

// A device that never answers gives HTTP 504, quickly with ?timeout=.
func TestDeviceNeverAnswers(t *testing.T) {
	srv := servertest.Start(t)
	d := connect(t, srv, "coap", "mute")
	d.mu.Lock()
	d.silent = true
	d.mu.Unlock()
	start := time.Now()
	var r map[string]any
	if code := srv.API("GET", "/api/clients/mute/3/0/0?timeout=1", nil, &r); code != http.StatusGatewayTimeout {
		t.Fatalf("HTTP %d %v, want 504", code, r)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

// LwM2M Core 6.5: a request for a sleeping queue-mode device waits until
// the device sends an Update, then goes out.
func TestQueueMode(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.QueueAwake = 200 * time.Millisecond })
	d := newTestDevice(t, "sleepy").dialPlain(srv.CoAPAddr())
	if r := d.register("Q"); r.Code != codes.Created {
		t.Fatal(r.Code)
	}
	time.Sleep(300 * time.Millisecond) // asleep now
	type result struct {
		resp *dm.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := srv.Read(ctx, "sleepy", "/3/0/0", nil)
		done <- result{r, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("request went out to a sleeping device: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	if code := d.update(); code != codes.Changed {
		t.Fatal(code)
	}
	select {
	case r := <-done:
		if r.err != nil || string(r.resp.Payload) != "fotastack" {
			t.Fatalf("queued read: %+v %v", r.resp, r.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("queued request not sent after the Update")
	}
}

// The API refuses requests without the bearer token.
func TestAPIToken(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := http.Get(srv.URL + "/api/clients")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("without token: %d", resp.StatusCode)
	}
	body := map[string]any{"endpoint": "e1", "tls": map[string]any{"mode": "psk", "details": map[string]any{"identity": "i1", "key": "00ff"}}}
	if code := srv.API("PUT", "/api/security/clients", body, nil); code != 200 {
		t.Fatalf("PUT security: %d", code)
	}
	var list []map[string]any
	srv.API("GET", "/api/security/clients", nil, &list)
	if len(list) != 1 || list[0]["endpoint"] != "e1" {
		t.Fatalf("security list %v", list)
	}
	if code := srv.API("DELETE", "/api/security/clients/e1", nil, nil); code != 204 {
		t.Fatalf("DELETE security: %d", code)
	}
	bad := map[string]any{"endpoint": "e2", "tls": map[string]any{"mode": "psk", "details": map[string]any{"identity": "i2", "key": "zz"}}}
	if code := srv.API("PUT", "/api/security/clients", bad, nil); code != 400 {
		t.Fatalf("bad hex key: %d", code)
	}
}

// LwM2M Core 6.2.1: a second Register of an endpoint replaces the first
// registration; the old registration ID is gone and its observations too.
func TestReRegisterReplaces(t *testing.T) {
	srv := servertest.Start(t)
	d := connect(t, srv, "coap", "again")
	oldID := d.regID
	if _, err := srv.Observe(context.Background(), "again", "/3/0/9", nil); err != nil {
		t.Fatal(err)
	}
	if r := d.register(); r.Code != codes.Created || d.regID == oldID {
		t.Fatalf("second register: %v id %s", r.Code, d.regID)
	}
	if n := len(srv.Devices()); n != 1 {
		t.Fatalf("%d devices", n)
	}
	if len(srv.Observations("again")) != 0 {
		t.Fatal("observation of the old registration kept")
	}
	saved := d.regID
	d.regID = oldID
	if code := d.update(); code != codes.NotFound {
		t.Fatalf("update of the replaced registration: %v, want 4.04", code)
	}
	d.regID = saved
	if code := d.update(); code != codes.Changed {
		t.Fatalf("update of the new registration: %v", code)
	}
	regs, _ := srv.Store.Registrations()
	if len(regs) != 1 || regs[0].ID != saved {
		t.Fatalf("stored %+v", regs)
	}
}
