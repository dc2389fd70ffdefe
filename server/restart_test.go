package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/servertest"
)

// Registrations and observations survive a server restart: 50 plain CoAP
// devices and 5 DTLS-PSK devices register and are observed; the server
// stops and starts again from the same file on the same ports. All are
// still registered without re-registering; the plain devices' notifications
// arrive on their old tokens and the server can read from them; the DTLS
// devices (whose sessions died with the server, as DTLS requires) handshake
// again, send an Update to their old registration, and their notifications
// arrive too.
func TestRestartKeepsRegistrationsAndObservations(t *testing.T) {
	const plain, secure = 50, 5
	srv := servertest.Start(t)
	var devs []*testDevice
	for i := 0; i < plain; i++ {
		devs = append(devs, connect(t, srv, "coap", fmt.Sprintf("plain-%02d", i)))
	}
	for i := 0; i < secure; i++ {
		devs = append(devs, connect(t, srv, "coaps", fmt.Sprintf("dtls-%02d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, d := range devs {
		if r, err := srv.Observe(ctx, d.ep, "/3/0/9", nil); err != nil || !r.Observe {
			t.Fatalf("observe %s: %+v %v", d.ep, r, err)
		}
	}
	coapAddr, coapsAddr, path := srv.CoAPAddr().String(), srv.CoAPSAddr().String(), srv.DBPath
	srv.Stop()

	srv2 := servertest.StartAt(t, path, func(c *server.Config) {
		c.CoAPAddr, c.CoAPSAddr = coapAddr, coapsAddr
	})
	if n := len(srv2.Devices()); n != plain+secure {
		t.Fatalf("%d devices registered after restart, want %d", n, plain+secure)
	}
	ev, stop := srv2.Events().Subscribe(4 * (plain + secure))
	defer stop()
	for _, d := range devs[:plain] {
		d.set("/3/0/9", "77")
		if err := d.notify("/3/0/9"); err != nil {
			t.Fatalf("%s: notification after restart not acknowledged: %v", d.ep, err)
		}
	}
	got := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for len(got) < plain {
		select {
		case e := <-ev:
			if e.Type == events.Notification {
				got[e.Endpoint] = true
			}
		case <-timeout:
			t.Fatalf("notifications from %d of %d plain devices after restart", len(got), plain)
		}
	}
	// The server reaches a plain device it has not heard from since the restart.
	if r, err := srv2.Read(ctx, devs[1].ep, "/3/0/0", nil); err != nil || string(r.Payload) != "fotastack" {
		t.Fatalf("read after restart: %+v %v", r, err)
	}
	for _, d := range devs[plain:] {
		if err := d.dialPSK(srv2.CoAPSAddr(), d.ep+"-id", testKey); err != nil {
			t.Fatalf("%s: handshake after restart: %v", d.ep, err)
		}
		if code := d.update(); code != codes.Changed {
			t.Fatalf("%s: update of the old registration after restart: %v", d.ep, code)
		}
		if err := d.notify("/3/0/9"); err != nil {
			t.Fatalf("%s: notification: %v", d.ep, err)
		}
		waitEvent(t, ev, events.Notification, d.ep)
	}
}

// LwM2M Core 6.2.1: a registration not updated within its lifetime is removed.
func TestLifetimeExpiry(t *testing.T) {
	srv := servertest.Start(t)
	ev, stop := srv.Events().Subscribe(16)
	defer stop()
	d := newTestDevice(t, "short").dialPlain(srv.CoAPAddr())
	r, err := d.post("/rd", []string{"ep=short", "lt=1"}, []byte("</1/0>"))
	if err != nil || r.Code != codes.Created {
		t.Fatalf("register: %v %v", r, err)
	}
	e := waitEvent(t, ev, events.Deregistration, "short")
	if m, _ := e.Data.(map[string]any); m["expired"] != true {
		t.Fatalf("event %v", e.Data)
	}
	if regs, _ := srv.Store.Registrations(); len(regs) != 0 {
		t.Fatal("expired registration still stored")
	}
}
