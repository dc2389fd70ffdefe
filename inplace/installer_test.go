package inplace

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/fotastack/fota/delta"
)

const testDevice = "test-meter"

// testKey is fixed so that test packages are reproducible.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

// smallPair is a 64 KiB old image and a new one with what firmware updates
// do: blocks moved forward and back, code inserted (shifting everything
// after it), bytes patched, a tail appended.
func smallPair() (old, new []byte) {
	r := rand.New(rand.NewPCG(1, 2))
	old = make([]byte, 64<<10)
	for i := range old {
		// Compressible but not trivial, like code.
		if i%16 < 4 {
			old[i] = byte(r.IntN(256))
		} else {
			old[i] = byte(i / 64)
		}
	}
	new = append(new, old[:5000]...)
	ins := make([]byte, 700)
	for i := range ins {
		ins[i] = byte(r.IntN(256))
	}
	new = append(new, ins...)                // insertion: shifts the rest forward
	new = append(new, old[40000:48000]...)   // a block moved back
	new = append(new, old[5000:40000]...)    // the bulk, shifted
	new = append(new, old[52000:]...)        // a deletion
	new = append(new, old[48000:52000]...)   // moved to the end
	for i := 9000; i < len(new); i += 3001 { // scattered patches (changed constants)
		new[i] ^= 0x5A
	}
	new = append(new, bytes.Repeat([]byte{0xFF, 0x00, 0x13}, 1500)...)
	return old, new
}

func makePatch(t testing.TB, old, new []byte, eb int, mod func(*delta.Options)) []byte {
	t.Helper()
	// RAM: what a device with the default budget grants the decoder
	// (delta.DefaultRAM may pick a model a little too big for it).
	o := delta.Options{InPlace: true, EraseBlock: eb, RAM: DefaultDecoderRAM, Key: testKey, DeviceType: testDevice, Version: "2.0.0", SeqNo: 2}
	if mod != nil {
		mod(&o)
	}
	p, err := delta.Make(old, new, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func provisioned(t testing.TB, g Geometry, old []byte) *Flash {
	t.Helper()
	f, err := NewFlash(g, 42)
	if err != nil {
		t.Fatal(err)
	}
	p := Provision{Image: old, Version: "1.0.0", DeviceType: testDevice, TrustedKey: testKey.Public().(ed25519.PublicKey), SeqNo: 1}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	return f
}

func bootImage(t testing.TB, f *Flash) []byte {
	t.Helper()
	img, _, err := Image(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var smallGeo = Geometry{Size: 256 << 10, EraseBlock: 4096, PageSize: 256}

func TestInstallCleanGivesNewImage(t *testing.T) {
	old, new := smallPair()
	patch := makePatch(t, old, new, 4096, nil)
	f := provisioned(t, smallGeo, old)
	var calls []int
	rep, err := Install(f, patch, Options{Progress: func(done, total int) { calls = append(calls, done) }})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bootImage(t, f), new) {
		t.Fatal("image after install is not the new image")
	}
	res, err := Boot(f, Options{})
	if err != nil || res.Version != "2.0.0" || res.Resumed {
		t.Fatalf("boot: %+v %v", res, err)
	}
	if len(calls) != rep.Steps || calls[len(calls)-1] != rep.Steps {
		t.Fatalf("progress calls %v for %d steps", calls, rep.Steps)
	}
	// The pair exercises both step kinds, so the sweeps cover both.
	if rep.DirectSteps == 0 || rep.DirectSteps == rep.Steps {
		t.Fatalf("%d of %d steps direct: the pair no longer has both kinds", rep.DirectSteps, rep.Steps)
	}
	hdr, _ := delta.Parse(patch)
	if rep.ArenaPeak != Need(hdr) || rep.ArenaPeak > DefaultRAMBudget+4096 {
		t.Fatalf("arena peak %d, Need %d", rep.ArenaPeak, Need(hdr))
	}
	t.Logf("%d of %d steps direct (no scratch)", rep.DirectSteps, rep.Steps)
	t.Logf("patch %d bytes for %d->%d; %d steps, %d flash ops, %v simulated; installer RAM %d bytes (decoder %d + block %d + fixed %d)",
		len(patch), len(old), len(new), rep.Steps, rep.Ops, rep.SimTime, rep.ArenaPeak, delta.ArenaSize(hdr), 4096, rep.ArenaPeak-delta.ArenaSize(hdr)-4096)
	// A second install of the same package is refused: the image is no
	// longer the package's old image.
	if _, err := Install(f, patch, Options{}); !errors.Is(err, delta.ErrOldImage) {
		t.Fatalf("reinstall: %v", err)
	}
}

// sweepResult counts the outcomes of power-cut runs.
type sweepResult struct {
	tried, bricked, oldThenRetried int
}

func (r *sweepResult) add(ok, retried bool) {
	r.tried++
	if !ok {
		r.bricked++
	}
	if retried {
		r.oldThenRetried++
	}
}

// runCut cuts power after k operations of do (clean or torn) on a clone of
// base, reboots, optionally cuts the resuming boot after second operations
// too, boots again and checks the device runs the new image. A cut before
// the package is staged leaves the old image running: then the update is
// tried again, as the server would, and must succeed.
func runCut(t testing.TB, base *Flash, do func(*Flash) error, patch, old, new []byte, k int, torn bool, second int) (ok, retried bool) {
	f := base.Clone()
	f.CutAfter(k, torn)
	if err := do(f); err != nil && !errors.Is(err, ErrPowerCut) {
		t.Errorf("cut %d torn=%v: install: %v", k, torn, err)
		return false, false
	}
	f.Reboot()
	if second > 0 {
		f.CutAfter(second, !torn)
		if _, err := Boot(f, Options{}); err != nil && !errors.Is(err, ErrPowerCut) {
			t.Errorf("cut %d torn=%v then %d: boot: %v", k, torn, second, err)
			return false, false
		}
		f.Reboot()
	}
	res, err := Boot(f, Options{})
	if err != nil {
		t.Errorf("cut %d torn=%v second %d: boot: %v", k, torn, second, err)
		return false, false
	}
	img, _, err := Image(f)
	if err != nil {
		t.Errorf("cut %d: %v", k, err)
		return false, false
	}
	if bytes.Equal(img, new) && res.Version == "2.0.0" {
		return true, false
	}
	if !bytes.Equal(img, old) || res.Version != "1.0.0" {
		t.Errorf("cut %d torn=%v second %d: device runs neither image (version %q)", k, torn, second, res.Version)
		return false, false
	}
	if _, err := Install(f, patch, Options{}); err != nil {
		t.Errorf("cut %d torn=%v: retry after booting old: %v", k, torn, err)
		return false, true
	}
	return bytes.Equal(bootImage(t, f), new), true
}

// sweepStride is 1 (every operation) in a plain `go test`; under -short or
// the race detector the sweeps take every 7th operation.
func sweepStride() int {
	if testing.Short() || raceEnabled {
		return 7
	}
	return 1
}

func opsOf(t testing.TB, base *Flash, do func(*Flash) error) int {
	t.Helper()
	f := base.Clone()
	before := f.Stats().Ops()
	if err := do(f); err != nil {
		t.Fatal(err)
	}
	return int(f.Stats().Ops() - before)
}

// TestPowerCutSweepEveryOperation cuts power after every erase or program
// operation of an install, clean and torn: first each operation of the
// staging copy (from the provisioned device), then each operation of the
// in-place phase (from the staged device). Every run must end on the new
// image.
func TestPowerCutSweepEveryOperation(t *testing.T) {
	old, new := smallPair()
	sweepEveryOperation(t, "", makePatch(t, old, new, 4096, nil), old, new)
}

// sweepEveryOperation stages patch over a flash holding old, then cuts the
// power after every staging operation and after every in-place operation
// (sampled by sweepStride), clean and torn, boots, and checks the result;
// label names the sweep in the log. No run may brick, and no in-place cut
// may come back on the old image.
func sweepEveryOperation(t *testing.T, label string, patch, old, new []byte) {
	t.Helper()
	base := provisioned(t, smallGeo, old)
	stage := func(f *Flash) error { _, err := Stage(f, patch, Options{}); return err }
	resume := func(f *Flash) error { _, err := Resume(f, Options{}); return err }
	staged := base.Clone()
	if err := stage(staged); err != nil {
		t.Fatal(err)
	}
	var rs, ri sweepResult
	nStage, nResume := opsOf(t, base, stage), opsOf(t, staged, resume)
	for k := 1; k <= nStage; k += sweepStride() {
		for _, torn := range []bool{false, true} {
			rs.add(runCut(t, base, stage, patch, old, new, k, torn, 0))
		}
	}
	for k := 1; k <= nResume; k += sweepStride() {
		for _, torn := range []bool{false, true} {
			ri.add(runCut(t, staged, resume, patch, old, new, k, torn, 0))
		}
	}
	t.Logf("%sstaging: %d operations, %d cut runs, %d bricked, %d booted old and re-installed", label, nStage, rs.tried, rs.bricked, rs.oldThenRetried)
	t.Logf("%sin place: %d operations, %d cut runs, %d bricked, %d booted old", label, nResume, ri.tried, ri.bricked, ri.oldThenRetried)
	if rs.tried == 0 || ri.tried == 0 {
		t.Fatal("sweep ran no cuts")
	}
	if rs.bricked+ri.bricked != 0 || ri.oldThenRetried != 0 {
		t.Fatalf("bricked: %d in staging, %d in place; %d in-place cuts came back on the old image", rs.bricked, ri.bricked, ri.oldThenRetried)
	}
}

func TestPowerCutDuringResume(t *testing.T) {
	old, new := smallPair()
	patch := makePatch(t, old, new, 4096, nil)
	base := provisioned(t, smallGeo, old)
	if _, err := Stage(base, patch, Options{}); err != nil {
		t.Fatal(err)
	}
	resume := func(f *Flash) error { _, err := Resume(f, Options{}); return err }
	total := opsOf(t, base, resume)
	tried, bad := 0, 0
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 150/sweepStride(); i++ {
		k := 1 + r.IntN(total)
		second := 1 + r.IntN(total-k+10)
		ok, _ := runCut(t, base, resume, patch, old, new, k, i%2 == 0, second)
		tried++
		if !ok {
			bad++
		}
	}
	if bad != 0 {
		t.Fatalf("%d of %d double-fault runs bricked", bad, tried)
	}
}

// Refused packages must leave every byte of the flash file as it was.
func TestBadPackagesRefusedBeforeFlashChanges(t *testing.T) {
	old, new := smallPair()
	good := makePatch(t, old, new, 4096, nil)
	otherOld := append([]byte(nil), old...)
	otherOld[100] ^= 1
	_, otherKey, _ := ed25519.GenerateKey(nil)
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 0x10
	cases := []struct {
		name  string
		patch []byte
		want  error
	}{
		{"truncated", good[:len(good)-100], delta.ErrSignature},
		{"truncated-header", good[:40], delta.ErrFormat},
		{"wrong-signature", makePatch(t, old, new, 4096, func(o *delta.Options) { o.Key = otherKey }), delta.ErrSignature},
		{"other-old-image", makePatch(t, otherOld, new, 4096, nil), delta.ErrOldImage},
		{"corrupt-block", corrupt, delta.ErrSignature},
		{"wrong-device-type", makePatch(t, old, new, 4096, func(o *delta.Options) { o.DeviceType = "other-meter" }), ErrDeviceType},
		{"rollback", makePatch(t, old, new, 4096, func(o *delta.Options) { o.SeqNo = 0 }), ErrRollback},
		{"wrong-erase-block", makePatch(t, old, new, 8192, nil), ErrDoesNotFit},
		{"sequential", makePatch(t, old, new, 4096, func(o *delta.Options) { o.InPlace = false }), delta.ErrFormat},
		{"empty", nil, delta.ErrFormat},
	}
	path := filepath.Join(t.TempDir(), "dev.flash")
	f, err := CreateFlash(path, smallGeo, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := Provision{Image: old, Version: "1.0.0", DeviceType: testDevice, TrustedKey: testKey.Public().(ed25519.PublicKey), SeqNo: 1}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := readFlashBytes(t, path)
			ops := f.Stats().Ops()
			_, err := Install(f, c.patch, Options{})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !bytes.Equal(before, readFlashBytes(t, path)) || f.Stats().Ops() != ops {
				t.Fatal("refused package changed the flash file")
			}
		})
	}
	// The RAM budget is enforced before the flash changes too.
	before := readFlashBytes(t, path)
	hdr, _ := delta.Parse(good)
	if _, err := Install(f, good, Options{RAMBudget: Need(hdr) - 1}); !errors.Is(err, ErrRAMBudget) {
		t.Fatalf("budget one byte short: %v", err)
	}
	if !bytes.Equal(before, readFlashBytes(t, path)) {
		t.Fatal("over-budget package changed the flash file")
	}
	// With exactly the figure Need reports, it installs.
	if _, err := Install(f, good, Options{RAMBudget: Need(hdr)}); err != nil {
		t.Fatalf("budget exactly Need: %v", err)
	}
	if !bytes.Equal(bootImage(t, f), new) {
		t.Fatal("image after install")
	}
}

// A reboot in a new process: the file-backed flash is cut, closed and
// reopened, and boot resumes from what the file holds.
func TestFileBackedCutAndReboot(t *testing.T) {
	old, new := smallPair()
	patch := makePatch(t, old, new, 4096, nil)
	path := filepath.Join(t.TempDir(), "dev.flash")
	f, err := CreateFlash(path, smallGeo, 5)
	if err != nil {
		t.Fatal(err)
	}
	p := Provision{Image: old, Version: "1.0.0", DeviceType: testDevice, TrustedKey: testKey.Public().(ed25519.PublicKey), SeqNo: 1}
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
	if _, err := Stage(f, patch, Options{}); err != nil {
		t.Fatal(err)
	}
	f.CutAfter(123, true)
	if _, err := Resume(f, Options{}); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("resume with cut: %v", err)
	}
	// No Close: the process dies with the power.
	g, err := OpenFlash(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res, err := Boot(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Version != "2.0.0" || res.Update.FirstStep == 0 || !bytes.Equal(bootImage(t, g), new) {
		t.Fatalf("boot after reopen: %+v", res)
	}
}

func TestInstallRefusedWhileUpdateInProgress(t *testing.T) {
	old, new := smallPair()
	patch := makePatch(t, old, new, 4096, nil)
	f := provisioned(t, smallGeo, old)
	if _, err := Stage(f, patch, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Stage(f, patch, Options{}); !errors.Is(err, ErrInProgress) {
		t.Fatalf("second stage: %v", err)
	}
	if _, err := Resume(f, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(f, Options{}); !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("resume after commit: %v", err)
	}
}

// A result that does not hash to the package's new image is reported as a
// failure and never booted. The image region is damaged behind the
// installer's back after staging (a flash fault), so that the decoded
// result is wrong.
func TestFailedResultIsNotBooted(t *testing.T) {
	old, new := smallPair()
	patch := makePatch(t, old, new, 4096, nil)
	f := provisioned(t, smallGeo, old)
	if _, err := Stage(f, patch, Options{}); err != nil {
		t.Fatal(err)
	}
	l, _ := LayoutFor(f.Geometry())
	// Clear bits in the last old block: a flash fault after verification.
	if err := f.Program(l.ImageStart+int64(len(old))-10, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(f, Options{}); !errors.Is(err, ErrUpdateFailed) {
		t.Fatalf("resume: %v", err)
	}
	if _, err := Boot(f, Options{}); !errors.Is(err, ErrUpdateFailed) {
		t.Fatalf("boot after failed update: %v", err)
	}
}

// The in-place phase takes its memory from the arena: the Go heap grows by
// little more than the arena itself, however many steps the image has.
func TestResumeHeapUseIsTheArena(t *testing.T) {
	old, new := smallPair()
	patch := makePatch(t, old, new, 4096, nil)
	f := provisioned(t, smallGeo, old)
	if _, err := Stage(f, patch, Options{}); err != nil {
		t.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	rep, err := Resume(f, Options{})
	runtime.ReadMemStats(&m1)
	if err != nil {
		t.Fatal(err)
	}
	heap := int(m1.TotalAlloc - m0.TotalAlloc)
	t.Logf("resume allocated %d bytes of heap: arena %d (peak used %d), rest %d for %d steps", heap, rep.ArenaSize, rep.ArenaPeak, heap-rep.ArenaSize, rep.Steps)
	if heap-rep.ArenaSize > 4096 {
		t.Fatalf("resume allocated %d bytes beyond its %d-byte arena", heap-rep.ArenaSize, rep.ArenaSize)
	}
}

func TestTornBootRecordFallsBackToOtherCopy(t *testing.T) {
	f := provisioned(t, smallGeo, []byte("old image"))
	l, _ := LayoutFor(f.Geometry())
	rec, _, err := readBootRecord(f, l)
	if err != nil {
		t.Fatal(err)
	}
	nr := *rec
	nr.Version = "9"
	f.CutAfter(2, true) // erase completes, the record program is torn
	if err := writeBootRecord(f, l, &nr); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("torn write: %v", err)
	}
	f.Reboot()
	got, _, err := readBootRecord(f, l)
	if err != nil || got.Version != "1.0.0" {
		t.Fatalf("after torn write: %+v %v", got, err)
	}
}

// The 64 KiB erase-block option: the same guarantees with block erases,
// on a sample of the cut points (every 5th operation, clean and torn).
func TestPowerCutSweep64KiBBlocks(t *testing.T) {
	old, new := smallPair()
	patch := makePatch(t, old, new, 65536, nil)
	geo := Geometry{Size: 1 << 20, EraseBlock: 65536, PageSize: 256}
	base := provisioned(t, geo, old)
	install := func(f *Flash) error { _, err := Install(f, patch, Options{}); return err }
	total := opsOf(t, base, install)
	var r sweepResult
	for k := 1; k <= total; k += 5 * sweepStride() {
		for _, torn := range []bool{false, true} {
			r.add(runCut(t, base, install, patch, old, new, k, torn, 0))
		}
	}
	t.Logf("64 KiB blocks: %d operations, %d cut runs, %d bricked", total, r.tried, r.bricked)
	if r.bricked != 0 {
		t.Fatalf("%d of %d runs bricked", r.bricked, r.tried)
	}
	hdr, _ := delta.Parse(patch)
	if Need(hdr) > DefaultRAMBudget+65536 {
		t.Fatalf("Need %d exceeds the default budget", Need(hdr))
	}
}

// The RAM budget is the device's, kept in the boot record: an install may
// not be granted more than the boot that would resume it, or a cut would
// leave an update no boot can finish.
func TestRAMBudgetIsTheDevicesAcrossReboots(t *testing.T) {
	old, new := smallPair()
	patch := makePatch(t, old, new, 4096, nil)
	hdr, _ := delta.Parse(patch)
	need := Need(hdr)
	small := provisioned(t, smallGeo, old)
	l, _ := LayoutFor(smallGeo)
	rec, _, _ := readBootRecord(small, l)
	rec.RAMBudget = uint32(need - 1)
	if err := writeBootRecord(small, l, rec); err != nil {
		t.Fatal(err)
	}
	ops := small.Stats().Ops()
	if _, err := Install(small, patch, Options{RAMBudget: 1 << 20}); !errors.Is(err, ErrRAMBudget) {
		t.Fatalf("install granted more than the device has: %v", err)
	}
	if small.Stats().Ops() != ops {
		t.Fatal("refused install changed the flash")
	}
	// A device with exactly the need installs, and its boot (default
	// options) resumes within the same budget.
	exact := provisioned(t, smallGeo, old)
	rec, _, _ = readBootRecord(exact, l)
	rec.RAMBudget = uint32(need)
	if err := writeBootRecord(exact, l, rec); err != nil {
		t.Fatal(err)
	}
	exact.CutAfter(300, true)
	if _, err := Install(exact, patch, Options{}); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("install with cut: %v", err)
	}
	exact.Reboot()
	res, err := Boot(exact, Options{})
	if err != nil || !res.Resumed || res.Update.ArenaSize != need || !bytes.Equal(bootImage(t, exact), new) {
		t.Fatalf("boot: %+v %v", res, err)
	}
	if got, _, _ := readBootRecord(exact, l); got.RAMBudget != uint32(need) {
		t.Fatal("commit lost the device's RAM budget")
	}
}

// stashPair is an image whose new version swaps two blocks' worth of code
// and moves a third back and forth: blocks that read each other, which no
// write order satisfies, so that its package stashes old blocks.
func stashPair() (old, new []byte) {
	r := rand.New(rand.NewPCG(3, 4))
	old = make([]byte, 48<<10)
	for i := range old {
		if i%16 < 6 {
			old[i] = byte(r.IntN(256))
		} else {
			old[i] = byte(i / 32)
		}
	}
	new = bytes.Clone(old)
	const b = 4096
	copy(new[3*b:4*b], old[8*b:9*b]) // 3 <- 8 and 8 <- 3: a cycle
	copy(new[8*b:9*b], old[3*b:4*b])
	copy(new[5*b+100:6*b], old[10*b:11*b-100]) // 5 <- 10 <- 6 <- 5
	copy(new[10*b:11*b], old[6*b:7*b])
	copy(new[6*b:7*b], old[5*b:6*b])
	for i := 1000; i < len(new); i += 2999 {
		new[i] ^= 0x33
	}
	return old, new
}

// TestPowerCutSweepWithStash: a package that stashes old blocks in the
// staging area survives a cut at every operation, the stash copy included.
func TestPowerCutSweepWithStash(t *testing.T) {
	old, new := stashPair()
	patch := makePatch(t, old, new, 4096, nil)
	hdr, _ := delta.Parse(patch)
	t.Logf("package %d bytes, order %v, stash %v", len(patch), hdr.Order, hdr.Stash)
	if len(hdr.Stash) == 0 {
		t.Fatal("the package stashes nothing; the test wants a stash")
	}
	sweepEveryOperation(t, "stash: ", patch, old, new)
}
