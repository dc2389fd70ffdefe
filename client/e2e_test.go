package client_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/servertest"
)

func waitServerEvent(t *testing.T, ch <-chan events.Event, typ, ep string, within time.Duration) events.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e := <-ch:
			if e.Type == typ && e.Endpoint == ep {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event for %s within %v", typ, ep, within)
			return events.Event{}
		}
	}
}

// The client against the real server package over DTLS-PSK and plain
// CoAP: registration, every device-management operation the server
// offers, observe with notifications, Send, and de-registration.
func TestEndToEndWithServer(t *testing.T) {
	for _, scheme := range []string{"coaps", "coap"} {
		t.Run(scheme, func(t *testing.T) {
			srv := servertest.Start(t)
			ev, cancel := srv.Events().Subscribe(256)
			defer cancel()
			ep := "e2e-" + scheme
			cfg := client.Config{
				Endpoint: ep, Lifetime: 30 * time.Second, RequestTimeout: 3 * time.Second,
				MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
				Device: client.DeviceInfo{Manufacturer: "fotastack", Model: "sim-1", FirmwareVersion: "1.0.0"},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			if os.Getenv("CLIENT_DEBUG") != "" {
				cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if scheme == "coaps" {
				key := []byte("e2e-secret")
				srv.AddPSK(ep, ep+"-id", key)
				cfg.ServerURI, cfg.PSKIdentity, cfg.PSKKey = "coaps://"+srv.CoAPSAddr().String(), ep+"-id", key
			} else {
				cfg.ServerURI = "coap://" + srv.CoAPAddr().String()
			}
			c, err := client.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer c.Stop()
			waitServerEvent(t, ev, events.Registration, ep, 5*time.Second)
			reg := srv.Device(ep).Registration()
			if reg.Transport != scheme || reg.Version != "1.1" || !strings.Contains(reg.Links, "</3/0>") {
				t.Fatalf("registration %+v", reg)
			}
			if scheme == "coaps" && (reg.Security != "psk" || reg.Identity != ep+"-id") {
				t.Fatalf("session security %q identity %q", reg.Security, reg.Identity)
			}
			ctx, cancelCtx := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancelCtx()

			// Read in the device's default and in each format the server asks for.
			r, err := srv.Read(ctx, ep, "/3/0/3", nil)
			if err != nil || r.Code != codes.Content || string(r.Payload) != "1.0.0" {
				t.Fatalf("read /3/0/3: %v %+v", err, r)
			}
			for _, cf := range []lwm2m.ContentFormat{lwm2m.FormatTLV, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR, lwm2m.FormatSenMLJSON} {
				r, err := srv.Read(ctx, ep, "/3/0", &cf)
				if err != nil || r.Code != codes.Content || r.Format != cf {
					t.Fatalf("read /3/0 as %v: %v %+v", cf, err, r)
				}
				es, err := lwm2m.Decode(cf, lwm2m.InstancePath(3, 0), r.Payload, c)
				if err != nil || len(es) < 10 {
					t.Fatalf("decode /3/0 %v: %v (%d entries)", cf, err, len(es))
				}
			}
			// Write, then read back.
			if r, err := srv.Write(ctx, ep, "/3/0/14", true, lwm2m.FormatText, []byte("+05:30")); err != nil || r.Code != codes.Changed {
				t.Fatalf("write: %v %+v", err, r)
			}
			if r, _ := srv.Read(ctx, ep, "/3/0/14", nil); string(r.Payload) != "+05:30" {
				t.Fatalf("read back %q", r.Payload)
			}
			// Errors come back with their codes.
			if r, err := srv.Write(ctx, ep, "/3/0/0", true, lwm2m.FormatText, []byte("x")); err != nil || r.Code != codes.MethodNotAllowed {
				t.Fatalf("write read-only: %v %+v", err, r)
			}
			if r, err := srv.Read(ctx, ep, "/42/0", nil); err != nil || r.Code != codes.NotFound {
				t.Fatalf("read unknown: %v %+v", err, r)
			}
			// Execute with arguments.
			got := make(chan string, 1)
			c.SimpleObject(3).OnExecute(client.DevReboot, func(_ uint16, args string) error { got <- args; return nil })
			if r, err := srv.Execute(ctx, ep, "/3/0/4", "0='soft'"); err != nil || r.Code != codes.Changed {
				t.Fatalf("execute: %v %+v", err, r)
			}
			if a := <-got; a != "0='soft'" {
				t.Errorf("execute args %q", a)
			}
			// Discover and Write-Attributes.
			if r, err := srv.WriteAttributes(ctx, ep, "/4/0/2", []string{"pmin=0", "pmax=30"}); err != nil || r.Code != codes.Changed {
				t.Fatalf("write-attributes: %v %+v", err, r)
			}
			if r, err := srv.Discover(ctx, ep, "/4/0"); err != nil || !strings.Contains(string(r.Payload), "</4/0/2>;pmin=0;pmax=30") {
				t.Fatalf("discover: %v %+v", err, r)
			}
			// Create and delete.
			body, _ := lwm2m.Encode(lwm2m.FormatTLV, lwm2m.ObjectPath(1), []lwm2m.Entry{
				{Path: lwm2m.ResourcePath(1, 2, 0), Value: lwm2m.Integer(2)},
				{Path: lwm2m.ResourcePath(1, 2, 1), Value: lwm2m.Integer(300)},
			})
			if r, err := srv.Create(ctx, ep, "/1", lwm2m.FormatTLV, body); err != nil || r.Code != codes.Created {
				t.Fatalf("create: %v %+v", err, r)
			}
			if r, err := srv.Delete(ctx, ep, "/1/2"); err != nil || r.Code != codes.Deleted {
				t.Fatalf("delete: %v %+v", err, r)
			}
			// Composite read and write.
			r, err = srv.ReadComposite(ctx, ep, []string{"/3/0/0", "/5/0/3"}, lwm2m.FormatSenMLCBOR)
			if err != nil || r.Code != codes.Content {
				t.Fatalf("read-composite: %v %+v", err, r)
			}
			if es, err := lwm2m.Decode(r.Format, lwm2m.Root, r.Payload, c); err != nil || len(es) != 2 {
				t.Fatalf("read-composite decode: %v %v", err, es)
			}
			wc, _ := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.Root, []lwm2m.Entry{
				{Path: lwm2m.ResourcePath(3, 0, 15), Value: lwm2m.String("Asia/Kolkata")},
			})
			if r, err := srv.WriteComposite(ctx, ep, lwm2m.FormatSenMLCBOR, wc); err != nil || r.Code != codes.Changed {
				t.Fatalf("write-composite: %v %+v", err, r)
			}
			// Observe: a change on the device reaches the server's event stream.
			if r, err := srv.Observe(ctx, ep, "/4/0/2", nil); err != nil || r.Code != codes.Content {
				t.Fatalf("observe: %v %+v", err, r)
			}
			_ = c.SimpleObject(4).Set(lwm2m.ResourcePath(4, 0, 2), lwm2m.Integer(-42))
			e := waitServerEvent(t, ev, events.Notification, ep, 3*time.Second)
			if b, _ := json.Marshal(e.Data); !strings.Contains(string(b), "-42") {
				t.Errorf("notification %s lacks -42", b)
			}
			// Send.
			if err := c.Send(ctx, lwm2m.ResourcePath(3, 0, 3)); err != nil {
				t.Fatal(err)
			}
			e = waitServerEvent(t, ev, events.Send, ep, 3*time.Second)
			b, _ := json.Marshal(e.Data)
			var sent struct {
				Val struct {
					Payload []byte `json:"payload"`
				} `json:"val"`
			}
			_ = json.Unmarshal(b, &sent)
			es, err := lwm2m.Decode(lwm2m.FormatSenMLCBOR, lwm2m.Root, sent.Val.Payload, c)
			if err != nil || len(es) != 1 || es[0].Value.Str() != "1.0.0" {
				t.Errorf("send event %s: %v %v", b, es, err)
			}
			// Stop de-registers.
			c.Stop()
			waitServerEvent(t, ev, events.Deregistration, ep, 3*time.Second)
			if srv.Device(ep) != nil {
				t.Error("still registered after Stop")
			}
		})
	}
}

// The server refuses a device whose PSK it does not know; the client
// reports the failure and keeps retrying instead of hanging.
func TestEndToEndUnknownPSK(t *testing.T) {
	srv := servertest.Start(t)
	evs := make(chan client.Event, 16)
	c, err := client.New(client.Config{
		Endpoint: "stranger", ServerURI: "coaps://" + srv.CoAPSAddr().String(),
		PSKIdentity: "nobody", PSKKey: []byte("k"), HandshakeTimeout: 2 * time.Second,
		MinBackoff: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e client.Event) {
			select {
			case evs <- e:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	select {
	case e := <-evs:
		if e.Kind != client.EventRegisterFailed || e.Err == nil {
			t.Fatalf("first event %+v, want a failed registration", e)
		}
		// The server answers unknown_psk_identity and the client says so.
		if !strings.Contains(e.Err.Error(), `does not know PSK identity "nobody"`) {
			t.Fatalf("failure %q does not say the identity is unknown", e.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported")
	}
	if srv.Device("stranger") != nil {
		t.Fatal("unknown identity registered")
	}
}

// The server restarts from its database over DTLS: the device's session
// is gone, its registration is not. The client's next Update gets no
// answer on the dead session, so it retries over a new handshake and
// keeps its registration (no new Register), and the server can manage it
// again.
func TestEndToEndServerRestart(t *testing.T) {
	srv := servertest.Start(t)
	ep, key := "restart-dev", []byte("restart-key")
	srv.AddPSK(ep, ep+"-id", key)
	addr := srv.CoAPSAddr().String()
	evs := make(chan client.Event, 64)
	c, err := client.New(client.Config{
		Endpoint: ep, ServerURI: "coaps://" + addr, PSKIdentity: ep + "-id", PSKKey: key,
		Lifetime: 60 * time.Second, RequestTimeout: time.Second, MinBackoff: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e client.Event) {
			select {
			case evs <- e:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	waitClientEvent(t, evs, client.EventRegistered)
	id := srv.Device(ep).ID()
	srv.Stop()
	srv2 := servertest.StartAt(t, srv.DBPath, func(cfg *server.Config) { cfg.CoAPSAddr, cfg.CoAPAddr = addr, "127.0.0.1:0" })
	c.TriggerUpdate()
	waitClientEvent(t, evs, client.EventUpdated)
	if d := srv2.Device(ep); d == nil || d.ID() != id {
		t.Fatalf("after restart: device %v, want registration %s kept", d, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := srv2.Read(ctx, ep, "/3/0/0", nil); err != nil || r.Code != codes.Content {
		t.Fatalf("read after restart: %v %+v", err, r)
	}
}

func waitClientEvent(t *testing.T, ch <-chan client.Event, k client.EventKind) client.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-ch:
			if e.Kind == k {
				return e
			}
			if e.Kind == client.EventRegistered && k == client.EventUpdated {
				t.Fatalf("registered anew (%s) instead of updating", e.Location)
			}
		case <-deadline:
			t.Fatalf("no %v event", k)
			return client.Event{}
		}
	}
}

// Queue mode against the real server over DTLS: while the device sleeps
// the server holds a Read in its queue; the device's next Update (a new
// handshake from the same port) releases it, and the answer arrives.
func TestEndToEndQueueMode(t *testing.T) {
	srv := servertest.Start(t, func(cfg *server.Config) { cfg.QueueAwake = 300 * time.Millisecond })
	ep, key := "queue-dev", []byte("queue-key")
	srv.AddPSK(ep, ep+"-id", key)
	evs := make(chan client.Event, 64)
	c, err := client.New(client.Config{
		Endpoint: ep, ServerURI: "coaps://" + srv.CoAPSAddr().String(), PSKIdentity: ep + "-id", PSKKey: key,
		Lifetime: 60 * time.Second, Queue: true, QueueWait: 300 * time.Millisecond, RequestTimeout: 2 * time.Second,
		Device:     client.DeviceInfo{Serial: ep + "-serial"},
		MinBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e client.Event) {
			select {
			case evs <- e:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	waitClientEvent(t, evs, client.EventRegistered)
	if !srv.Device(ep).Registration().Queue {
		t.Fatal("server does not see queue mode")
	}
	waitClientEvent(t, evs, client.EventSleeping)
	time.Sleep(100 * time.Millisecond) // past the server's awake window too
	type result struct {
		r   *dm.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := srv.Read(ctx, ep, "/3/0/2", nil)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("read answered while the device sleeps: %+v %v", res.r, res.err)
	case <-time.After(300 * time.Millisecond):
	}
	c.TriggerUpdate()
	waitClientEvent(t, evs, client.EventWakeup)
	res := <-done
	if res.err != nil || res.r.Code != codes.Content || string(res.r.Payload) != ep+"-serial" {
		t.Fatalf("queued read: %+v %v", res.r, res.err)
	}
}

// A queue-mode device asleep over DTLS: a value change wakes it, and the
// notification reaches the real server's event stream after the Update.
func TestEndToEndQueueModeNotification(t *testing.T) {
	srv := servertest.Start(t, func(cfg *server.Config) { cfg.QueueAwake = 300 * time.Millisecond })
	ev, cancelEv := srv.Events().Subscribe(256)
	defer cancelEv()
	ep, key := "queue-obs", []byte("queue-obs-key")
	srv.AddPSK(ep, ep+"-id", key)
	evs := make(chan client.Event, 64)
	c, err := client.New(client.Config{
		Endpoint: ep, ServerURI: "coaps://" + srv.CoAPSAddr().String(), PSKIdentity: ep + "-id", PSKKey: key,
		Lifetime: 60 * time.Second, Queue: true, QueueWait: 400 * time.Millisecond, RequestTimeout: 2 * time.Second,
		MinBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e client.Event) {
			select {
			case evs <- e:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	waitClientEvent(t, evs, client.EventRegistered)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := srv.Observe(ctx, ep, "/4/0/2", nil); err != nil || r.Code != codes.Content {
		t.Fatalf("observe: %v %+v", err, r)
	}
	waitClientEvent(t, evs, client.EventSleeping)
	_ = c.SimpleObject(4).Set(lwm2m.ResourcePath(4, 0, 2), lwm2m.Integer(-33))
	waitClientEvent(t, evs, client.EventWakeup)
	e := waitServerEvent(t, ev, events.Notification, ep, 5*time.Second)
	if b, _ := json.Marshal(e.Data); !strings.Contains(string(b), "-33") {
		t.Errorf("notification %s lacks -33", b)
	}
}
