package client

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// LwM2M Core 6.5 queue mode: Q in the Register; reachable for QueueWait
// after each exchange, then asleep (socket closed, requests go
// unanswered) until the next Update; a notification due while asleep
// wakes the device and goes out after the Update.
func TestQueueMode(t *testing.T) {
	s := newTestServer(t, false)
	c, ev := startClient(t, s, func(c *Config) {
		c.Queue = true
		c.QueueWait = 400 * time.Millisecond
	})
	reg := s.expect("register", time.Second)
	if !slices.Contains(reg.query, "Q") {
		t.Errorf("register query %v lacks Q", reg.query)
	}
	d := s.device(c.cfg.Endpoint)
	// Awake: requests are answered, and each one extends the wait.
	n := newNotes()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.conn.Observe(ctx, "/4/0/2", n.add); err != nil {
		t.Fatal(err)
	}
	n.next(t, time.Second)
	start := time.Now()
	ev.wait(t, EventSleeping, 2*time.Second)
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("asleep %v after the last exchange, queue wait is 400ms", el)
	}
	// Asleep: a request gets no answer.
	rctx, rcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := d.conn.Get(rctx, "/3/0/0")
	rcancel()
	if err == nil {
		t.Fatal("a sleeping device answered")
	}
	// A change while asleep wakes the device: Update, then the notification.
	setSignal(t, c, -99)
	ev.wait(t, EventWakeup, 2*time.Second)
	up := s.expect("update", 2*time.Second)
	if up.code != codes.Changed {
		t.Fatalf("update answered %v", up.code)
	}
	if x := n.next(t, 2*time.Second); x.body != "-99" {
		t.Errorf("notification after wake-up %q, want -99", x.body)
	}
	// Awake again: requests are answered on the session of the Update.
	if r := s.device(c.cfg.Endpoint).do(codes.GET, "/3/0/0", -1, nil); r.code != codes.Content {
		t.Errorf("read after wake-up: %v", r.code)
	}
	ev.wait(t, EventSleeping, 2*time.Second)
	// Stop while asleep still de-registers.
	c.Stop()
	if de := s.expect("deregister", 2*time.Second); de.code != codes.Deleted {
		t.Errorf("deregister answered %v", de.code)
	}
}
