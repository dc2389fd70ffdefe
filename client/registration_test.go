package client

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// LwM2M Core 6.2.1/6.2.2/6.2.3 over plain CoAP and DTLS-PSK: Register with
// the query and object links, Update before the lifetime ends, De-register
// on stop.
func TestRegisterUpdateDeregister(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := "coap"
		if secure {
			name = "coaps-psk"
		}
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, secure)
			c, ev := startClient(t, s, func(c *Config) { c.Lifetime = 2 * time.Second })
			reg := s.expect("register", time.Second)
			if reg.code != codes.Created {
				t.Fatalf("register answered %v", reg.code)
			}
			for _, q := range []string{"ep=" + c.cfg.Endpoint, "lt=2", "lwm2m=1.1", "b=U"} {
				if !slices.Contains(reg.query, q) {
					t.Errorf("register query %v lacks %q", reg.query, q)
				}
			}
			if slices.Contains(reg.query, "Q") {
				t.Errorf("queue flag sent without queue mode: %v", reg.query)
			}
			for _, l := range []string{`</>;rt="oma.lwm2m";ct=112`, "</1>;ver=1.1", "</1/0>", "</3>;ver=1.1", "</3/0>", "</4/0>", "</5>;ver=1.1", "</5/0>"} {
				if !strings.Contains(reg.body, l) {
					t.Errorf("register links %q lack %q", reg.body, l)
				}
			}
			if strings.Contains(reg.body, "</0") {
				t.Errorf("register links list the Security object: %q", reg.body)
			}
			if c.Location() != reg.loc {
				t.Errorf("location %q, server assigned %q", c.Location(), reg.loc)
			}
			// Update at 90% of 2 s.
			start := time.Now()
			up := s.expect("update", 3*time.Second)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("update after %v, lifetime 2s", d)
			}
			if up.loc != reg.loc || up.code != codes.Changed {
				t.Errorf("update to %s answered %v; registered at %s", up.loc, up.code, reg.loc)
			}
			if up.body != "" || len(up.query) != 0 {
				t.Errorf("update carries unchanged data: query %v body %q", up.query, up.body)
			}
			ev.wait(t, EventUpdated, time.Second)
			c.Stop()
			de := s.expect("deregister", 2*time.Second)
			if de.loc != reg.loc || de.code != codes.Deleted {
				t.Errorf("deregister %s answered %v", de.loc, de.code)
			}
			if e := ev.wait(t, EventDeregistered, time.Second); e.Err != nil {
				t.Errorf("deregistered with error %v", e.Err)
			}
		})
	}
}

// LwM2M Core 6.2.2: an Update answered 4.04 means the server forgot the
// device; it registers again.
func TestReregisterWhenServerForgets(t *testing.T) {
	s := newTestServer(t, false)
	c, ev := startClient(t, s, nil)
	first := s.expect("register", time.Second)
	s.forget()
	c.TriggerUpdate()
	up := s.expect("update", 2*time.Second)
	if up.code != codes.NotFound {
		t.Fatalf("update answered %v, want 4.04", up.code)
	}
	again := s.expect("register", 2*time.Second)
	if again.loc == first.loc {
		t.Errorf("re-registered at the old location %s", again.loc)
	}
	ev.wait(t, EventRegistered, time.Second)
	if c.Location() != again.loc {
		t.Errorf("client keeps location %q, server assigned %q", c.Location(), again.loc)
	}
}

// A refused Register is retried with growing backoff until it succeeds.
func TestRegisterRetriesWithBackoff(t *testing.T) {
	s := newTestServer(t, false)
	s.reject = 3
	start := time.Now()
	_, ev := startClient(t, s, nil)
	s.mu.Lock()
	attempts := s.attempts
	s.mu.Unlock()
	if attempts != 4 {
		t.Errorf("%d Register attempts, want 4 (3 refused)", attempts)
	}
	// Backoff 50, 100, 200 ms with half jitter: at least 25+50+100 ms.
	if d := time.Since(start); d < 175*time.Millisecond {
		t.Errorf("registered after %v: retries without backoff", d)
	}
	_ = ev
}

// A wrong PSK fails the handshake quickly with a clear error, instead of
// hanging on the first request (../shared/notes trap 1).
func TestWrongPSKFailsHandshake(t *testing.T) {
	s := newTestServer(t, true)
	ev := newEvents()
	c, err := New(Config{Endpoint: "evil", ServerURI: s.uri, PSKIdentity: "dev-id", PSKKey: []byte("wrong"),
		HandshakeTimeout: 2 * time.Second, MinBackoff: time.Second, OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	e := ev.wait(t, EventRegisterFailed, 5*time.Second)
	cancel()
	<-done
	if e.Err == nil || !strings.Contains(e.Err.Error(), "handshake") || !strings.Contains(e.Err.Error(), "wrong PSK key") {
		t.Errorf("failure %v does not name the handshake and the likely wrong key", e.Err)
	}
	if s.reg("evil") != nil {
		t.Error("device with a wrong key is registered")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{ServerURI: "coap://127.0.0.1:1"},
		{Endpoint: "x", ServerURI: "http://127.0.0.1"},
		{Endpoint: "x", ServerURI: "coaps://127.0.0.1"},
		{Endpoint: "x", ServerURI: "coap://"},
		{Endpoint: "x", ServerURI: "coap://h", Lifetime: time.Millisecond},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// A lifetime written to /1/0/1 is announced by an Update with lt=.
func TestLifetimeWriteSendsUpdate(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	s.expect("register", time.Second)
	d := s.device(c.cfg.Endpoint)
	if r := d.do(codes.PUT, "/1/0/1", 0, []byte("120")); r.code != codes.Changed {
		t.Fatalf("write lifetime: %v %s", r.code, r.body)
	}
	up := s.expect("update", 2*time.Second)
	if !slices.Contains(up.query, "lt=120") {
		t.Errorf("update query %v lacks lt=120", up.query)
	}
}

// LwM2M Core E.2: executing /1/0/8 (Registration Update Trigger) makes the
// device send an Update.
func TestRegistrationUpdateTrigger(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	s.expect("register", time.Second)
	if r := s.device(c.cfg.Endpoint).do(codes.POST, "/1/0/8", -1, nil); r.code != codes.Changed {
		t.Fatalf("execute /1/0/8: %v %s", r.code, r.body)
	}
	if up := s.expect("update", 2*time.Second); up.code != codes.Changed {
		t.Errorf("update answered %v", up.code)
	}
}

// The server closes the DTLS session (close_notify): the device
// reconnects at once and sends an Update, keeping its registration.
func TestReconnectWhenSessionClosed(t *testing.T) {
	s := newTestServer(t, true)
	c, ev := startClient(t, s, nil)
	reg := s.expect("register", time.Second)
	if err := s.reg(c.cfg.Endpoint).conn.Close(); err != nil {
		t.Fatal(err)
	}
	up := s.expect("update", 5*time.Second)
	if up.loc != reg.loc || up.code != codes.Changed {
		t.Fatalf("update to %s answered %v; registered at %s", up.loc, up.code, reg.loc)
	}
	ev.wait(t, EventUpdated, time.Second)
	if r := s.device(c.cfg.Endpoint).do(codes.GET, "/3/0/0", -1, nil); r.code != codes.Content {
		t.Errorf("read over the new session: %v", r.code)
	}
}
