package firmware

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/inplace"
)

// The test device: a 256 KiB NOR flash of 4 KiB erase blocks in a file,
// provisioned with image v1 of device type "sim-1" and the test key.
var testGeometry = inplace.Geometry{Size: 256 << 10, EraseBlock: 4096, PageSize: 256}

const testDeviceType = "sim-1"

type fixture struct {
	key      ed25519.PrivateKey
	old, new []byte
	pkg      []byte // signed in-place delta v1 -> v2
}

var (
	fixOnce sync.Once
	fix     fixture
)

// testImages makes a v1 image that looks like firmware (repeated
// structures, some entropy) and a v2 that differs in places, and the
// signed in-place package between them.
func testFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		r := rand.New(rand.NewPCG(1, 2))
		_, key, err := ed25519.GenerateKey(detReader{r})
		if err != nil {
			panic(err)
		}
		old := make([]byte, 40<<10)
		for i := range old {
			if i%64 < 40 {
				old[i] = byte(i / 64)
			} else {
				old[i] = byte(r.Uint32())
			}
		}
		nw := append([]byte(nil), old...)
		for i := 0; i < len(nw); i += 997 {
			nw[i] ^= 0x5a
		}
		// New code: 12 KiB the old image does not have, so the package
		// is about that big (dozens of blocks at any block size).
		fresh := make([]byte, 12<<10)
		for i := range fresh {
			fresh[i] = byte(r.Uint32())
		}
		nw = append(nw[:20<<10], append(fresh, nw[20<<10:]...)...)
		fix = fixture{key: key, old: old, new: nw}
		fix.pkg = mustMake(old, nw, key, testDeviceType, "2.0")
	})
	return &fix
}

// mustMake builds a signed in-place package. RAM is set below the
// installer's default budget (16 KiB plus one erase block, less its fixed
// buffers) so the package fits whatever delta's own default is.
func mustMake(old, nw []byte, key ed25519.PrivateKey, devType, version string) []byte {
	p, err := delta.Make(old, nw, delta.Options{InPlace: true, EraseBlock: 4096, RAM: 12 << 10, Key: key, DeviceType: devType, Version: version, SeqNo: 2})
	if err != nil {
		panic(err)
	}
	return p
}

type detReader struct{ r *rand.Rand }

func (d detReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(d.r.Uint32())
	}
	return len(p), nil
}

// newFlash creates the device's flash file in dir, provisioned with v1.
func newFlash(t testing.TB, dir string) *inplace.Flash {
	t.Helper()
	fx := testFixture(t)
	f, err := inplace.CreateFlash(filepath.Join(dir, "flash.bin"), testGeometry, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := inplace.Provision{Image: fx.old, Version: "1.0", DeviceType: testDeviceType, TrustedKey: fx.key.Public().(ed25519.PublicKey), SeqNo: 1}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	return f
}

// reopenFlash is the flash after a power cycle.
func reopenFlash(t testing.TB, dir string) *inplace.Flash {
	t.Helper()
	f, err := inplace.OpenFlash(filepath.Join(dir, "flash.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// device is one simulated device: its flash and Firmware Update object.
type device struct {
	t   testing.TB
	dir string
	f   *inplace.Flash
	o   *Object
	cfg Config
}

// newDevice provisions a device in a fresh directory.
func newDevice(t testing.TB, mod func(*Config)) *device {
	t.Helper()
	d := &device{t: t, dir: t.TempDir()}
	d.f = newFlash(t, d.dir)
	d.cfg = Config{StateDir: filepath.Join(d.dir, "state"), RetryWait: 20 * time.Millisecond,
		AckTimeout: 100 * time.Millisecond, RequestTimeout: time.Second, Retries: 3,
		Logger: testLogger()}
	if mod != nil {
		mod(&d.cfg)
	}
	d.open()
	t.Cleanup(d.close)
	return d
}

func (d *device) open() {
	d.t.Helper()
	cfg := d.cfg
	cfg.Flash = d.f
	o, err := Open(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.o = o
}

func (d *device) close() {
	if d.o != nil {
		_ = d.o.Close()
		d.o = nil
	}
	if d.f != nil {
		_ = d.f.Close()
		d.f = nil
	}
}

// reboot is a power cycle: the object and flash are closed and opened
// again from the files, as a new process would.
func (d *device) reboot() {
	d.t.Helper()
	d.close()
	d.f = reopenFlash(d.t, d.dir)
	d.open()
}

// waitState waits until the object is in state s with result r.
func (d *device) waitState(s State, r Result, within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		gs, gr := d.o.State()
		if gs == s && gr == r {
			return
		}
		if time.Now().After(deadline) {
			done, total := d.o.Progress()
			d.t.Fatalf("state %v result %v (%d/%d bytes), want %v result %v", gs, gr, done, total, s, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = context.Background

type inplaceBoot = inplace.BootResult

func ed25519GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(nil)
}

// testLogger logs everything under -v and nothing otherwise.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
