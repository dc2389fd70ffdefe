package firmware

import (
	"errors"
	"testing"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/lwm2m"
)

var (
	pURI    = lwm2m.ResourcePath(ObjectID, 0, ResPackageURI)
	pPkg    = lwm2m.ResourcePath(ObjectID, 0, ResPackage)
	pUpdate = lwm2m.ResourcePath(ObjectID, 0, ResUpdate)
	pCancel = lwm2m.ResourcePath(ObjectID, 0, ResCancel)
)

func writeURI(o *Object, uri string) error {
	return o.Write(pURI, []lwm2m.Entry{{Path: pURI, Value: lwm2m.String(uri)}}, true)
}

func writePkg(o *Object, b []byte) error {
	return o.Write(pPkg, []lwm2m.Entry{{Path: pPkg, Value: lwm2m.Opaque(b)}}, true)
}

func TestFreshDeviceIsIdleWithResultInitial(t *testing.T) {
	d := newDevice(t, nil)
	es, err := d.o.Read(lwm2m.InstancePath(ObjectID, 0))
	if err != nil {
		t.Fatal(err)
	}
	got := map[lwm2m.Path]lwm2m.Value{}
	for _, e := range es {
		got[e.Path] = e.Value
	}
	for r, want := range map[uint16]int64{ResState: 0, ResUpdateResult: 0, ResDeliveryMethod: DeliveryBoth, ResSeverity: SeverityMajor} {
		if v := got[lwm2m.ResourcePath(ObjectID, 0, r)]; v.Int() != want {
			t.Errorf("/5/0/%d = %v, want %d", r, v, want)
		}
	}
	// Protocol Support: CoAP (0) and CoAPS (1), LwM2M Core E.6 resource 8.
	if v := got[lwm2m.ResourceInstancePath(ObjectID, 0, ResProtocolSupport, 1)]; v.Int() != ProtocolCoAPS {
		t.Errorf("/5/0/8/1 = %v, want CoAPS", v)
	}
	if _, ok := got[pPkg]; ok {
		t.Error("an instance read returned the write-only Package")
	}
	if _, err := d.o.Read(pPkg); !errors.Is(err, client.ErrNotAllowed) {
		t.Errorf("reading Package: %v, want ErrNotAllowed", err)
	}
}

// LwM2M Core E.6: Update is only valid in Downloaded; Cancel only in
// Downloading or Downloaded.
func TestUpdateAndCancelInIdleAreRefused(t *testing.T) {
	d := newDevice(t, nil)
	if err := d.o.Execute(pUpdate, ""); !errors.Is(err, client.ErrNotAllowed) || lwm2m.CodeOf(err).String() != "MethodNotAllowed" {
		t.Errorf("Update in Idle: %v (%v), want 4.05", err, lwm2m.CodeOf(err))
	}
	if err := d.o.Execute(pCancel, ""); !errors.Is(err, client.ErrNotAllowed) {
		t.Errorf("Cancel in Idle: %v, want ErrNotAllowed", err)
	}
	if s, r := d.o.State(); s != StateIdle || r != ResultInitial {
		t.Errorf("state %v %v after refused executes", s, r)
	}
}

func TestWholePackageWriteGoesToDownloadedAndEmptyWriteResets(t *testing.T) {
	d := newDevice(t, nil)
	fx := testFixture(t)
	if err := writePkg(d.o, fx.pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	es, _ := d.o.Read(lwm2m.ResourcePath(ObjectID, 0, ResPkgVersion))
	if es[0].Value.Str() != "2.0" {
		t.Errorf("PkgVersion %v, want 2.0", es[0].Value)
	}
	// A second package in Downloaded is refused until a reset.
	if err := writePkg(d.o, fx.pkg); !errors.Is(err, client.ErrNotAllowed) {
		t.Errorf("package write in Downloaded: %v", err)
	}
	// LwM2M Core E.6: an empty Package URI resets to Idle, result 0.
	if err := writeURI(d.o, ""); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultInitial, time.Second)
	if done, _ := d.o.Progress(); done != 0 {
		t.Errorf("%d bytes still counted after reset", done)
	}
	if err := writePkg(d.o, fx.pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	if err := writePkg(d.o, nil); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultInitial, time.Second)
}

func TestCancelInDownloadedGivesResult10(t *testing.T) {
	d := newDevice(t, nil)
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	if err := d.o.Execute(pCancel, ""); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultCancelled, time.Second)
	if err := d.o.Execute(pUpdate, ""); !errors.Is(err, client.ErrNotAllowed) {
		t.Errorf("Update after cancel: %v", err)
	}
}

func TestUpdateInstallsAndReportsSuccess(t *testing.T) {
	var booted string
	rebooted := make(chan struct{})
	d := newDevice(t, func(c *Config) {
		c.OnReboot = func(b inplaceBoot, err error) { booted = b.Version; close(rebooted) }
	})
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rebooted:
	case <-time.After(10 * time.Second):
		t.Fatal("no reboot after Update")
	}
	d.waitState(StateIdle, ResultSuccess, time.Second)
	if booted != "2.0" {
		t.Errorf("booted %q, want 2.0", booted)
	}
	if v, _ := d.o.RunningVersion(); v != "2.0" {
		t.Errorf("running %q after update", v)
	}
	// The result survives a reboot (LwM2M Core E.6: the server reads it
	// after the device registers again).
	d.reboot()
	d.waitState(StateIdle, ResultSuccess, time.Second)
}

func TestPackageChecks(t *testing.T) {
	fx := testFixture(t)
	_, otherKey, _ := ed25519GenerateKey()
	corrupt := append([]byte(nil), fx.pkg...)
	corrupt[len(corrupt)/2] ^= 0x01
	for _, tc := range []struct {
		name string
		pkg  []byte
		want Result
	}{
		{"corrupted byte", corrupt, ResultIntegrityFailure},
		{"signed by another key", mustMake(fx.old, fx.new, otherKey, testDeviceType, "2.0"), ResultIntegrityFailure},
		{"another device type", mustMake(fx.old, fx.new, fx.key, "sim-2", "2.0"), ResultUnsupportedType},
		{"another old image", mustMake(fx.new, fx.old, fx.key, testDeviceType, "2.0"), ResultUnsupportedType},
		// A new image larger than the image region (180 KiB here), in a
		// small package: result 2, not enough flash.
		{"new image bigger than the flash", mustMake(fx.old, append(append([]byte(nil), fx.old...), make([]byte, 160<<10)...), fx.key, testDeviceType, "2.0"), ResultNotEnoughFlash},
		{"garbage", []byte("not a package at all, not even close to one.................................."), ResultIntegrityFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, nil)
			if err := writePkg(d.o, tc.pkg); err != nil {
				t.Fatal(err)
			}
			d.waitState(StateIdle, tc.want, time.Second)
			if v, _ := d.o.RunningVersion(); v != "1.0" {
				t.Errorf("running %q, want the old 1.0", v)
			}
		})
	}
}

func TestPackageBiggerThanStagingIsResult2(t *testing.T) {
	d := newDevice(t, nil)
	big := make([]byte, d.o.st.size()+1)
	err := writePkg(d.o, big)
	if lwm2m.CodeOf(err).String() != "RequestEntityTooLarge" {
		t.Errorf("write of %d bytes: %v, want 4.13", len(big), err)
	}
	d.waitState(StateIdle, ResultNotEnoughFlash, time.Second)
}

func TestDeferredUpdateInstallsWhenTheDeferralEnds(t *testing.T) {
	rebooted := make(chan struct{})
	d := newDevice(t, func(c *Config) {
		c.Defer = func(int) time.Duration { return time.Hour }
		c.OnReboot = func(inplaceBoot, error) { close(rebooted) }
	})
	maxDefer := lwm2m.ResourcePath(ObjectID, 0, ResMaximumDeferTime)
	if err := d.o.Write(maxDefer, []lwm2m.Entry{{Path: maxDefer, Value: lwm2m.Unsigned(1)}}, true); err != nil {
		t.Fatal(err)
	}
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	// Deferred (11), capped by Maximum Defer Period: 1 s, not an hour.
	d.waitState(StateDownloaded, ResultDeferred, time.Second)
	select {
	case <-rebooted:
	case <-time.After(10 * time.Second):
		t.Fatal("the deferred update did not run at the end of the Maximum Defer Period")
	}
	d.waitState(StateIdle, ResultSuccess, time.Second)
}

func TestCriticalSeverityIsNotDeferred(t *testing.T) {
	rebooted := make(chan struct{})
	d := newDevice(t, func(c *Config) {
		c.Defer = func(int) time.Duration { return time.Hour }
		c.OnReboot = func(inplaceBoot, error) { close(rebooted) }
	})
	sev := lwm2m.ResourcePath(ObjectID, 0, ResSeverity)
	maxDefer := lwm2m.ResourcePath(ObjectID, 0, ResMaximumDeferTime)
	if err := d.o.Write(lwm2m.InstancePath(ObjectID, 0), []lwm2m.Entry{
		{Path: sev, Value: lwm2m.Integer(SeverityCritical)}, {Path: maxDefer, Value: lwm2m.Unsigned(3600)}}, false); err != nil {
		t.Fatal(err)
	}
	if err := d.o.Write(sev, []lwm2m.Entry{{Path: sev, Value: lwm2m.Integer(7)}}, true); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("severity 7: %v, want 4.00", err)
	}
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rebooted:
	case <-time.After(10 * time.Second):
		t.Fatal("critical update did not install")
	}
	d.waitState(StateIdle, ResultSuccess, time.Second)
}

func TestURIChecks(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want Result
	}{
		{"http://example.com/fw", ResultUnsupportedProtocol},
		{"https://example.com/fw", ResultUnsupportedProtocol},
		{"ftp://example.com/fw", ResultInvalidURI},
		{"coap://", ResultInvalidURI},
		{"::not a uri", ResultInvalidURI},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			d := newDevice(t, nil)
			if err := writeURI(d.o, tc.uri); err != nil {
				t.Fatal(err)
			}
			d.waitState(StateIdle, tc.want, time.Second)
		})
	}
}

func lwmPath(r uint16) lwm2m.Path { return lwm2m.ResourcePath(ObjectID, 0, r) }

// A package whose decoder needs more RAM than the installer may take is
// refused when the download ends: result 3 (out of RAM).
func TestPackageNeedingMoreRAMThanTheInstallerHasIsResult3(t *testing.T) {
	d := newDevice(t, func(c *Config) { c.Install.RAMBudget = 6 << 10 })
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultOutOfRAM, time.Second)
}

// A power cut in the middle of the in-place install: the device is dead
// until power-up; then the record says Updating, boot finishes the update
// from the installer's journal, and the result is 1 with v2 running.
func TestPowerCutDuringInstallIsFinishedAtPowerUp(t *testing.T) {
	d := newDevice(t, nil)
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	d.f.CutAfter(200, true) // past staging, inside the steps; the object is idle in Downloaded: no one else uses the flash
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	if err := d.o.Close(); err != nil { // waits for the installer goroutine
		t.Fatal(err)
	}
	if !d.f.PowerCut() {
		t.Fatal("the install ended before the power cut: move the cut earlier")
	}
	if s, _ := d.o.State(); s != StateUpdating {
		t.Fatalf("state %v after the power cut, want updating", s)
	}
	d.reboot()
	d.waitState(StateIdle, ResultSuccess, time.Second)
	if v, _ := d.o.RunningVersion(); v != "2.0" {
		t.Errorf("running %q after the resumed update", v)
	}
}

// The staged package rots in flash between download and Update: the check
// at Update catches it (result 5) and the old image keeps running.
func TestStagedPackageCorruptedBeforeUpdateIsResult5(t *testing.T) {
	d := newDevice(t, nil)
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	addr := d.o.st.l.StagingStart + 777
	var cell [1]byte
	if _, err := d.f.ReadAt(cell[:], addr); err != nil {
		t.Fatal(err)
	}
	if cell[0] == 0 {
		t.Fatal("picked a zero byte: choose another offset")
	}
	// NOR can only clear bits: clear the lowest set one.
	if err := d.f.Program(addr, []byte{cell[0] & (cell[0] - 1)}); err != nil {
		t.Fatal(err)
	}
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultIntegrityFailure, 5*time.Second)
	if v, _ := d.o.RunningVersion(); v != "1.0" {
		t.Errorf("running %q, want the old 1.0", v)
	}
}

// A power cut while the installer copies the package (before its journal
// says staged): power-up finds the old image intact; the update failed
// (result 8) and v1 still boots.
func TestPowerCutWhileStagingIsResult8WithTheOldImage(t *testing.T) {
	d := newDevice(t, nil)
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	d.f.CutAfter(20, true)
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	if err := d.o.Close(); err != nil {
		t.Fatal(err)
	}
	if !d.f.PowerCut() {
		t.Fatal("no power cut happened")
	}
	d.reboot()
	d.waitState(StateIdle, ResultUpdateFailed, time.Second)
	if v, _ := d.o.RunningVersion(); v != "1.0" {
		t.Errorf("running %q, want the old 1.0", v)
	}
}

// Cancel during a deferral stops the pending install, and Close does not
// wait for the deferral to run out.
func TestCancelDuringDeferralStopsIt(t *testing.T) {
	d := newDevice(t, func(c *Config) { c.Defer = func(int) time.Duration { return time.Hour } })
	maxDefer := lwm2m.ResourcePath(ObjectID, 0, ResMaximumDeferTime)
	if err := d.o.Write(maxDefer, []lwm2m.Entry{{Path: maxDefer, Value: lwm2m.Unsigned(3600)}}, true); err != nil {
		t.Fatal(err)
	}
	if err := writePkg(d.o, testFixture(t).pkg); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, time.Second)
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultDeferred, time.Second)
	if err := d.o.Execute(pCancel, ""); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultCancelled, time.Second)
	start := time.Now()
	if err := d.o.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Close took %v: the deferral timer was left running", time.Since(start))
	}
}

// An empty URI during a pull stops it and resets to Idle with result 0.
func TestEmptyURIDuringPullResets(t *testing.T) {
	srv := newFileServer(t, false, testFixture(t).pkg)
	srv.stallAt = 2
	d := newDevice(t, nil)
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { done, _ := d.o.Progress(); return done == 2*1024 }, 5*time.Second)
	if err := writeURI(d.o, ""); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultInitial, time.Second)
	if done, _ := d.o.Progress(); done != 0 {
		t.Errorf("%d bytes counted after the reset", done)
	}
}
