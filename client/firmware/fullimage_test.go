package firmware

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/inplace"
)

// unknownImage is firmware the server has never seen: a device flashed in
// the field or by another tool, version "0.9-field".
func unknownImage() []byte {
	r := rand.New(rand.NewPCG(77, 78))
	img := make([]byte, 52<<10)
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	return img
}

// fullPackage is the server's fallback when it does not know the running
// version: the new image as an in-place package made from no old image.
func fullPackage(t testing.TB, key ed25519.PrivateKey, devType string, seq uint32) []byte {
	t.Helper()
	p, err := delta.Make(nil, testFixture(t).new, delta.Options{InPlace: true, EraseBlock: 4096, RAM: inplace.DefaultDecoderRAM,
		Key: key, DeviceType: devType, Version: "2.0", SeqNo: seq})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newUnknownDevice is a test device whose flash runs unknownImage at
// sequence number 1.
func newUnknownDevice(t testing.TB, mod func(*Config)) *device {
	t.Helper()
	d := newDevice(t, mod)
	d.close()
	d.f = reopenFlash(t, d.dir)
	p := inplace.Provision{Image: unknownImage(), Version: "0.9-field", DeviceType: testDeviceType,
		TrustedKey: testFixture(t).key.Public().(ed25519.PublicKey), SeqNo: 1}
	if err := p.Write(d.f); err != nil {
		t.Fatal(err)
	}
	d.open()
	if v, err := d.o.RunningVersion(); err != nil || v != "0.9-field" {
		t.Fatalf("running %q %v", v, err)
	}
	return d
}

// A device running a version the server does not know pulls the full
// package over CoAP Block2, installs it over its unknown image and ends
// on v2 with result 1 (Update Result "success", LwM2M Core E.6).
func TestFullPackageOverUnknownImageIsResult1(t *testing.T) {
	fx := testFixture(t)
	pkg := fullPackage(t, fx.key, testDeviceType, 2)
	srv := newFileServer(t, false, pkg)
	rebooted := make(chan inplaceBoot, 1)
	d := newUnknownDevice(t, func(c *Config) {
		c.BlockSize = 1024
		c.OnReboot = func(b inplaceBoot, err error) { rebooted <- b }
	})
	// The v1->v2 delta is refused: it is not for this image (result 6).
	if err := writePkg(d.o, fx.pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultUnsupportedType, time.Second)

	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, 10*time.Second)
	stagedEquals(t, d, pkg)
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-rebooted:
		if b.Version != "2.0" {
			t.Errorf("booted %q", b.Version)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reboot")
	}
	d.waitState(StateIdle, ResultSuccess, time.Second)
	d.o.flashMu.Lock()
	img, rec, err := inplace.Image(d.f)
	d.o.flashMu.Unlock()
	if err != nil || !bytes.Equal(img, fx.new) || rec.Version != "2.0" || rec.SeqNo != 2 {
		t.Fatalf("after the full install: version %q, image equal %v, %v", rec.Version, bytes.Equal(img, fx.new), err)
	}
	d.reboot()
	d.waitState(StateIdle, ResultSuccess, time.Second)
}

// A full package is checked like a delta in everything but the old image:
// another key is result 5; another device type and a rollback are result 6.
// The unknown image keeps running.
func TestFullPackageChecks(t *testing.T) {
	fx := testFixture(t)
	_, otherKey, _ := ed25519GenerateKey()
	for _, tc := range []struct {
		name string
		pkg  []byte
		want Result
	}{
		{"signed by another key", fullPackage(t, otherKey, testDeviceType, 2), ResultIntegrityFailure},
		{"another device type", fullPackage(t, fx.key, "sim-2", 2), ResultUnsupportedType},
		{"rollback", fullPackage(t, fx.key, testDeviceType, 0), ResultUnsupportedType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newUnknownDevice(t, nil)
			if err := writePkg(d.o, tc.pkg); err != nil {
				t.Fatal(err)
			}
			d.waitState(StateIdle, tc.want, time.Second)
			if v, _ := d.o.RunningVersion(); v != "0.9-field" {
				t.Errorf("running %q, want the unknown 0.9-field", v)
			}
		})
	}
	// Too little installer RAM for the full package: result 3.
	d := newUnknownDevice(t, func(c *Config) { c.Install.RAMBudget = 6 << 10 })
	if err := writePkg(d.o, fullPackage(t, fx.key, testDeviceType, 2)); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultOutOfRAM, time.Second)
}

// A power cut in the middle of a full install: the unknown image is
// already partly overwritten, so power-up must finish the install; it
// does, with result 1.
func TestFullPackagePowerCutIsFinishedAtPowerUp(t *testing.T) {
	fx := testFixture(t)
	d := newUnknownDevice(t, nil)
	pkg := fullPackage(t, fx.key, testDeviceType, 2)
	if err := writePkg(d.o, pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	// Past staging (an erase per 4 KiB, a program per 256-byte page, a
	// journal record) and some blocks into the steps.
	staging := (len(pkg)+4095)/4096 + (len(pkg)+255)/256 + 1
	d.f.CutAfter(staging+40, true)
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	if err := d.o.Close(); err != nil {
		t.Fatal(err)
	}
	if !d.f.PowerCut() {
		t.Fatal("the install ended before the power cut: move the cut earlier")
	}
	// The cut fell among the steps: some of the unknown image is gone.
	d.f.Reboot()
	if info, err := inplace.Inspect(d.f); err != nil || info.Journal.State != inplace.StateDone {
		t.Fatalf("journal after the cut: %v %v, want step-done", info.Journal.State, err)
	}
	d.reboot()
	d.waitState(StateIdle, ResultSuccess, time.Second)
	if v, _ := d.o.RunningVersion(); v != "2.0" {
		t.Errorf("running %q after the resumed full install", v)
	}
}
