package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fotastack/fota/client"
)

func init() {
	register("client", "run one simulated LwM2M device against a server", runClient)
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "endpoint client name (required)")
	server := fs.String("server", "coap://127.0.0.1:5683", "LwM2M server URI, coap://HOST:PORT or coaps://HOST:PORT")
	bootstrapURI := fs.String("bootstrap", "", "bootstrap server URI: the device holds only this factory account (--psk-id/--psk-key are its bootstrap credentials) and gets its DM account by bootstrap, kept in --state-dir")
	pskID := fs.String("psk-id", "", "DTLS PSK identity (coaps)")
	pskKey := fs.String("psk-key", "", "DTLS PSK key in hex (coaps)")
	lifetime := fs.Duration("lifetime", 300*time.Second, "registration lifetime")
	queue := fs.Bool("queue", false, "queue mode: sleep between updates")
	queueWait := fs.Duration("queue-wait", 93*time.Second, "queue mode: how long to stay reachable after talking to the server")
	stateDir := fs.String("state-dir", "", "directory for the device's persistent state (bootstrap, firmware)")
	fwVersion := fs.String("firmware-version", "1.0.0", "firmware version reported in /3/0/3")
	verbose := fs.Bool("v", false, "log CoAP-level details")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if *endpoint == "" {
		return &exitError{2, errors.New("--endpoint is required")}
	}
	var key []byte
	if *pskKey != "" {
		var err error
		if key, err = hex.DecodeString(*pskKey); err != nil {
			return &exitError{2, fmt.Errorf("--psk-key: not hex: %w", err)}
		}
	}
	if *stateDir != "" {
		if err := os.MkdirAll(*stateDir, 0o700); err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := client.Config{
		Endpoint: *endpoint, ServerURI: *server, PSKIdentity: *pskID, PSKKey: key,
		Lifetime: *lifetime, Queue: *queue, QueueWait: *queueWait, StateDir: *stateDir,
		Device: client.DeviceInfo{
			Manufacturer: "fotastack", Model: "sim-1", Serial: *endpoint,
			FirmwareVersion: *fwVersion, DeviceType: "simulator", HardwareVersion: "1", SoftwareVersion: version,
		},
		Logger: log,
	}
	if *bootstrapURI != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runBootstrapClient(ctx, cfg, *bootstrapURI, *pskID, key) // cmd/fota/bootstrap.go
	}
	c, err := client.New(cfg)
	if err != nil {
		return &exitError{2, err}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Run logs each registration event; it returns after De-register once
	// Ctrl-C cancels ctx.
	return c.Run(ctx)
}
