package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/firmware"
	"github.com/fotastack/fota/client/software"
	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/lwm2m"
)

func init() {
	register("client", "run one simulated LwM2M device against a server", runClient)
}

func runClient(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runClientCtx(ctx, args)
}

// runClientCtx runs the device until ctx ends (Ctrl-C), then de-registers.
func runClientCtx(ctx context.Context, args []string) error {
	fs := newFlags("client", "--endpoint EP", "Run one simulated LwM2M device against a server until interrupted (then it de-registers); with --flash, on a simulated NOR flash that takes firmware updates.",
		"FOTA_PSK_KEY=000102030405060708090a0b0c0d0e0f fota client --endpoint meter-1 --bootstrap coaps://127.0.0.1:5784 --psk-id meter-1-bs --state-dir ./meter-1 --flash meter-1.flash --image v1.bin --firmware-version 1.0 --device-type meter --trust \"$(fota firmware key)\"")
	endpoint := fs.String("endpoint", "", "endpoint client name (required)")
	server := fs.String("server", "coap://127.0.0.1:5683", "LwM2M server URI, coap://HOST:PORT or coaps://HOST:PORT")
	bootstrapURI := fs.String("bootstrap", "", "bootstrap server URI: the device holds only this factory account (--psk-id/--psk-key are its bootstrap credentials) and gets its DM account by bootstrap, kept in --state-dir")
	pskID := fs.String("psk-id", "", "DTLS PSK identity (coaps)")
	pskKeyOf := secretFlags(fs.FlagSet, "psk-key", "FOTA_PSK_KEY", "DTLS PSK `key` in hex (coaps)")
	lifetime := fs.Duration("lifetime", 300*time.Second, "registration lifetime")
	queue := fs.Bool("queue", false, "queue mode: sleep between updates")
	queueWait := fs.Duration("queue-wait", 93*time.Second, "queue mode: how long to stay reachable after talking to the server")
	stateDir := fs.String("state-dir", "", "directory for the device's persistent state (bootstrap, firmware)")
	fwVersion := fs.String("firmware-version", "1.0.0", "firmware version reported in /3/0/3 without --flash; with --flash and --image, the version the new flash is provisioned with")
	flashPath := fs.String("flash", "", "simulated NOR flash file: the device boots its image (/3/0/3 reports that version) and takes firmware updates through the Firmware Update object (/5)")
	var spec flashSpec
	fs.StringVar(&spec.Image, "image", "", "with --flash: firmware image to provision when the flash file does not exist yet")
	flashGeometryFlags(fs.FlagSet, &spec, "flash-size")
	verbose := fs.Bool("v", false, "log CoAP-level details")
	devKey := fs.String("device-key", "", "with --flash: the device's key file (fota delta device-key), to install packages encrypted to it")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *endpoint == "" {
		return fs.usageError("--endpoint is required")
	}
	pskKey, err := pskKeyOf()
	if err != nil {
		return err
	}
	if *flashPath == "" && spec.Image != "" {
		return &exitError{2, errors.New("--image needs --flash")}
	}
	var key []byte
	if pskKey != "" {
		var err error
		if key, err = hex.DecodeString(pskKey); err != nil {
			return &exitError{2, errors.New("--psk-key: not a hex string")}
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
			FirmwareVersion: *fwVersion, DeviceType: "simulator", HardwareVersion: "1", SoftwareVersion: shortVersion(),
		},
		Logger: log,
	}
	// setup adds what the device has beyond the client core: with --flash,
	// the Firmware Update object over the flash.
	setup := func(context.Context, *client.Client) error { return nil }
	if *flashPath != "" {
		spec.Path, spec.Version = *flashPath, *fwVersion
		dk, err := deviceKey(*devKey)
		if err != nil {
			return err
		}
		dev, err := openClientFlash(spec, log, inplace.Options{DeviceKey: dk})
		if err != nil {
			return err
		}
		defer dev.close()
		fwDir := *flashPath + ".fw"
		if *stateDir != "" {
			fwDir = filepath.Join(*stateDir, "firmware")
		}
		dev.stateDir = fwDir
		cfg.Device.FirmwareVersion = dev.boot.Version
		if dev.boot.DeviceType != "" {
			cfg.Device.DeviceType = dev.boot.DeviceType
		}
		setup = dev.attach
	}
	// Every device has Software Management (/9): its applications live in
	// --state-dir/software, or for a device without one in a temporary
	// directory that goes when it stops.
	swDir := filepath.Join(*stateDir, "software")
	if *stateDir == "" {
		tmp, err := os.MkdirTemp("", "fota-client-apps-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		swDir = tmp
	}
	var trusted ed25519.PublicKey
	if spec.Trust != "" {
		if trusted, err = delta.ParsePublicKey(spec.Trust); err != nil {
			return &exitError{2, fmt.Errorf("--trust: %w", err)}
		}
	}
	apps, err := software.Open(software.Config{Dir: swDir, TrustedKey: trusted, Logger: log})
	if err != nil {
		return err
	}
	defer apps.Close()
	if trusted == nil {
		log.Info("applications: no --trust key, so application packages are checked by their SHA-256 only and tree deltas are refused")
	}
	withFlash := setup
	setup = func(ctx context.Context, c *client.Client) error {
		if err := withFlash(ctx, c); err != nil {
			return err
		}
		software.Attach(c, apps)
		return nil
	}
	if *bootstrapURI != "" {
		return client.RunWithBootstrap(ctx, cfg, client.BootstrapConfig{URI: *bootstrapURI, PSKIdentity: *pskID, PSKKey: key, Setup: setup})
	}
	c, err := client.New(cfg)
	if err != nil {
		return &exitError{2, err}
	}
	if err := setup(ctx, c); err != nil {
		return err
	}
	// Start, not Run: a firmware update's reboot stops and starts the
	// client again. Stop de-registers after Ctrl-C cancels ctx.
	if err := c.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	c.Stop()
	return nil
}

// clientFlash is the simulated device's flash and its Firmware Update
// object (one per DM client: a bootstrapped device gets a new client after
// each bootstrap).
type clientFlash struct {
	f        *inplace.Flash
	boot     inplace.BootResult
	stateDir string
	log      *slog.Logger
	obj      *firmware.Object
	opts     inplace.Options // the installer's (the device key)
}

// openClientFlash opens the flash file, manufacturing it first from
// spec.Image when it does not exist, and powers it up: inplace.Boot
// finishes an update a power cut interrupted and says what runs.
func openClientFlash(spec flashSpec, log *slog.Logger, opts inplace.Options) (*clientFlash, error) {
	if _, err := os.Stat(spec.Path); errors.Is(err, os.ErrNotExist) {
		if spec.Image == "" {
			return nil, &exitError{2, fmt.Errorf("--flash %s does not exist: give --image to create it", spec.Path)}
		}
		summary, err := spec.create() // cmd/fota/flash.go, as `fota flash create`
		if err != nil {
			return nil, fmt.Errorf("--flash: create: %w", err)
		}
		fmt.Fprint(os.Stderr, summary)
	}
	f, err := inplace.OpenFlash(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("--flash: %w", err)
	}
	boot, err := inplace.Boot(f, opts)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--flash %s: boot: %w", spec.Path, err)
	}
	if boot.Resumed {
		log.Info("flash: resumed an interrupted update", "steps", boot.Update.Steps)
	}
	log.Info("flash: booted", "version", boot.Version, "deviceType", boot.DeviceType, "bytes", boot.ImageSize)
	return &clientFlash{f: f, boot: boot, log: log, opts: opts}, nil
}

// attach gives c a Firmware Update object over the flash (closing the one
// a previous client had) and makes /3/0/3 report the version the flash
// runs now. It is client.BootstrapConfig.Setup.
func (d *clientFlash) attach(ctx context.Context, c *client.Client) error {
	if d.obj != nil {
		d.obj.Close()
		d.obj = nil
	}
	obj, err := firmware.Open(firmware.Config{Flash: d.f, StateDir: d.stateDir, Logger: d.log, Install: d.opts})
	if err != nil {
		return err
	}
	d.obj = obj
	if v, err := obj.RunningVersion(); err == nil {
		if dev := c.SimpleObject(3); dev != nil {
			_ = dev.Set(lwm2m.ResourcePath(3, 0, client.DevFirmwareVersion), lwm2m.String(v))
		}
	}
	firmware.Attach(ctx, c, obj)
	return nil
}

// close ends the Firmware Update object's work and closes the flash. Call
// after the client stopped.
func (d *clientFlash) close() {
	if d.obj != nil {
		d.obj.Close()
	}
	d.f.Close()
}
