package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/firmware"
	"github.com/fotastack/fota/client/fleet"
	"github.com/fotastack/fota/client/linksim"
	"github.com/fotastack/fota/inplace"
)

// fleetFlash gives every fleet device an in-memory NOR flash provisioned
// with one image and the Firmware Update object over it, so that a
// campaign can update the fleet (`fota fleet --flash-image`).
type fleetFlash struct {
	image      []byte
	version    string
	deviceType string
	trust      ed25519.PublicKey
	seq        uint32
	maxImage   int // the largest image the flash must hold
	profile    linksim.Profile
	dir        string // firmware progress records, one folder per device
	log        *slog.Logger

	mu       sync.Mutex
	objects  []*firmware.Object
	flashes  []*inplace.Flash
	installs map[int]int // device index -> updates installed (rebooted into another version)
}

// fleetFlashFlags are the `fota fleet` flags of fleetFlash.
type fleetFlashFlags struct {
	image, version, deviceType, trust *string
	seq                               *uint
	installs                          *string
}

func addFleetFlashFlags(fs *flag.FlagSet) fleetFlashFlags {
	return fleetFlashFlags{
		image:      fs.String("flash-image", "", "give each device an in-memory NOR flash running this image and the Firmware Update object (/5), so a campaign can update the fleet"),
		version:    fs.String("firmware-version", "1.0.0", "with --flash-image: its version"),
		deviceType: fs.String("device-type", "", "with --flash-image: its device type"),
		trust:      fs.String("trust", "", "with --flash-image: the server's firmware signing key (ed25519 public key, hex)"),
		seq:        fs.Uint("seq", 0, "with --flash-image: its sequence number (rollback protection)"),
		installs:   fs.String("installs", "", "with --flash-image: at exit, write to `FILE` how many updates each device installed (JSON: endpoint index -> count), to show none was updated twice"),
	}
}

// open makes the fleetFlash the flags ask for; nil without --flash-image.
func (fl fleetFlashFlags) open(prof linksim.Profile, log *slog.Logger) (*fleetFlash, error) {
	if *fl.image == "" {
		return nil, nil
	}
	if *fl.seq > math.MaxUint32 {
		return nil, &exitError{2, fmt.Errorf("--seq %d: too large", *fl.seq)}
	}
	return newFleetFlash(*fl.image, *fl.version, *fl.deviceType, *fl.trust, uint32(*fl.seq), prof, log)
}

// configure makes every device of cfg boot from its own flash and report
// the image's version and device type; ctx bounds the objects' work.
func (ff *fleetFlash) configure(ctx context.Context, cfg *fleet.Config) {
	server := ""
	if u, err := url.Parse(cfg.ServerURI); err == nil {
		server = u.Host
	}
	cfg.SetupVia = ff.setup(ctx, server)
	cfg.Device = client.DeviceInfo{Manufacturer: "fotastack", Model: "fleet-sim", FirmwareVersion: ff.version,
		DeviceType: ff.deviceType, HardwareVersion: "1", SoftwareVersion: "fleet"}
}

// newFleetFlash reads the image and the trusted key (hex ed25519).
func newFleetFlash(imagePath, version, deviceType, trustHex string, seq uint32, profile linksim.Profile, log *slog.Logger) (*fleetFlash, error) {
	img, err := os.ReadFile(imagePath)
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("--flash-image: %w", err)}
	}
	key, err := hex.DecodeString(trustHex)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, &exitError{2, fmt.Errorf("--trust: want the server's ed25519 public key, %d bytes in hex", ed25519.PublicKeySize)}
	}
	if deviceType == "" {
		return nil, &exitError{2, errors.New("--device-type is required with --flash-image")}
	}
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "fota-fleet-fw-")
	if err != nil {
		return nil, err
	}
	return &fleetFlash{image: img, version: version, deviceType: deviceType, trust: key, seq: seq,
		maxImage: len(img) + len(img)/4 + 64<<10, profile: profile, dir: dir, log: log, installs: map[int]int{}}, nil
}

// setup is fleet.Config.SetupVia: device i's flash and Firmware Update
// object; its pulls go over the device's simulated link (via).
// server is the LwM2M server's host:port as the fleet was given it: a
// device reaches it through its relay, so its own Server URI names the
// relay; a Package URI naming server is still the device's own server and
// is pulled over the registration's session (firmware.Config.Session).
func (ff *fleetFlash) setup(ctx context.Context, server string) func(int, *client.Client, func(string) string) error {
	return func(i int, c *client.Client, via func(string) string) error {
		f, err := inplace.NewFlash(demoFlashGeometry(len(ff.image), ff.maxImage), uint64(i)+1)
		if err != nil {
			return fmt.Errorf("device %d: flash: %w", i, err)
		}
		p := inplace.Provision{Image: ff.image, Version: ff.version, DeviceType: ff.deviceType, TrustedKey: ff.trust, SeqNo: ff.seq}
		if err := p.Write(f); err != nil {
			return fmt.Errorf("device %d: provision flash: %w", i, err)
		}
		cfg := firmware.Config{Flash: f, StateDir: filepath.Join(ff.dir, fmt.Sprint(i)), Via: via, Logger: ff.log}
		cfg.OnReboot = func(boot inplace.BootResult, err error) {
			if err == nil && boot.Version != ff.version {
				ff.mu.Lock()
				ff.installs[i]++
				ff.mu.Unlock()
			}
		}
		tr := fleet.Transmission(ff.profile)
		cfg.FlightInterval = tr.FlightInterval
		if tr.AckTimeout > 0 {
			// Each block is one confirmable GET: its ACK_TIMEOUT must
			// exceed the round trip plus the block's time on the link.
			cfg.AckTimeout = tr.AckTimeout
			cfg.RequestTimeout = 6 * tr.AckTimeout
			cfg.HandshakeTimeout = 60 * time.Second
			cfg.Retries = 8
		}
		if server != "" {
			cfg.Session = func() (*udpclient.Conn, string, string) {
				conn, scheme, _ := c.ServerSession()
				return conn, scheme, server
			}
		}
		obj, err := firmware.Open(cfg)
		if err != nil {
			return fmt.Errorf("device %d: %w", i, err)
		}
		ff.mu.Lock()
		ff.objects = append(ff.objects, obj)
		ff.flashes = append(ff.flashes, f)
		ff.mu.Unlock()
		firmware.Attach(ctx, c, obj)
		return nil
	}
}

// writeInstalls writes the install counts (--installs).
func (ff *fleetFlash) writeInstalls(path string) error {
	ff.mu.Lock()
	b, err := json.Marshal(ff.installs)
	ff.mu.Unlock()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// close ends the objects' work, after the fleet stopped.
func (ff *fleetFlash) close() {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	for _, o := range ff.objects {
		o.Close()
	}
	for _, f := range ff.flashes {
		f.Close()
	}
	os.RemoveAll(ff.dir)
}
