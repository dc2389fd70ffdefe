package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

// savedDMAccount stores a DM account for s in dir, as a finished bootstrap
// would, so that RunWithBootstrap registers without bootstrapping.
func savedDMAccount(t *testing.T, s *testServer, dir string) {
	t.Helper()
	a := NewFactoryAccounts(BootstrapConfig{URI: "coap://127.0.0.1:9"})
	if err := a.write(dmSecurity(4, s.uri, SecurityModeNoSec, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if err := a.write([]lwm2m.Entry{res(1, 2, SrvShortServerID, lwm2m.Integer(101)), res(1, 2, SrvLifetime, lwm2m.Integer(60))}); err != nil {
		t.Fatal(err)
	}
	if err := SaveAccounts(dir, a); err != nil {
		t.Fatal(err)
	}
}

// BootstrapConfig.Setup sees the DM client before it registers (an object
// it adds is in the Register's links) and may restart it with Stop and
// Start, as a firmware update's reboot does; RunWithBootstrap still ends
// with De-register when its context ends.
func TestRunWithBootstrapSetup(t *testing.T) {
	s := newTestServer(t, false)
	dir := t.TempDir()
	savedDMAccount(t, s, dir)
	got := make(chan *Client, 1)
	setupCtx := make(chan context.Context, 1)
	bc := BootstrapConfig{URI: "coap://127.0.0.1:9", Setup: func(ctx context.Context, c *Client) error {
		o := NewSimpleObject(3442, "1.0", false, ResourceDef{ID: 0, Name: "x", Type: lwm2m.TypeInteger, Operations: objects.R})
		o.AddInstance(0, map[uint16]lwm2m.Value{0: lwm2m.Integer(7)})
		c.SetObject(o)
		got <- c
		setupCtx <- ctx
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ev := newEvents()
	cfg := bsDeviceConfig(t, dir)
	cfg.OnEvent = ev.add
	go func() { done <- RunWithBootstrap(ctx, cfg, bc) }()
	defer func() { cancel(); <-done }()
	if m := s.expect("register", 5*time.Second); !strings.Contains(m.body, "</3442/0>") {
		t.Fatalf("register links %s: the object Setup added is missing", m.body)
	}
	ev.wait(t, EventRegistered, 5*time.Second)
	c, cctx := <-got, <-setupCtx
	c.Stop()
	s.expect("deregister", 5*time.Second)
	if err := c.Start(cctx); err != nil {
		t.Fatal(err)
	}
	s.expect("register", 5*time.Second)
	ev.wait(t, EventRegistered, 5*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunWithBootstrap: %v", err)
	}
	done <- nil
	s.expect("deregister", 5*time.Second)
}

// A Setup error ends RunWithBootstrap with it, before any registration.
func TestRunWithBootstrapSetupError(t *testing.T) {
	s := newTestServer(t, false)
	dir := t.TempDir()
	savedDMAccount(t, s, dir)
	boom := errors.New("flash unreadable")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := RunWithBootstrap(ctx, bsDeviceConfig(t, dir), BootstrapConfig{URI: "coap://127.0.0.1:9",
		Setup: func(context.Context, *Client) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("RunWithBootstrap: %v, want the Setup error", err)
	}
	select {
	case m := <-s.msgs:
		t.Fatalf("server got %s after a failed Setup", m.op)
	default:
	}
}
