package inplace

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func newTestFlash(t testing.TB, g Geometry) *Flash {
	t.Helper()
	f, err := NewFlash(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readAll(t testing.TB, f *Flash, off int64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFlashStartsErasedAndProgramClearsBits(t *testing.T) {
	f := newTestFlash(t, Geometry{Size: 16 * 4096})
	if got := readAll(t, f, 0, 4096); !bytes.Equal(got, bytes.Repeat([]byte{0xFF}, 4096)) {
		t.Fatal("new flash is not erased")
	}
	if err := f.Program(10, []byte{0xF0, 0x0F}); err != nil {
		t.Fatal(err)
	}
	// Clearing further bits of a programmed byte is allowed on NOR.
	if err := f.Program(10, []byte{0x30, 0x01}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, 10, 2); !bytes.Equal(got, []byte{0x30, 0x01}) {
		t.Fatalf("got % x", got)
	}
}

func TestFlashProgramOneOverZeroIsReportedWithAddress(t *testing.T) {
	f := newTestFlash(t, Geometry{Size: 16 * 4096})
	if err := f.Program(0x1234, []byte{0x00}); err != nil {
		t.Fatal(err)
	}
	err := f.Program(0x1230, []byte{0, 0, 0, 0, 0x01})
	var pe *ProgramError
	if !errors.Is(err, ErrProgramOneOverZero) || !errors.As(err, &pe) || pe.Addr != 0x1234 {
		t.Fatalf("err = %v, want ErrProgramOneOverZero at 0x1234", err)
	}
	// The refused page is unchanged.
	if got := readAll(t, f, 0x1230, 5); !bytes.Equal(got, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x00}) {
		t.Fatalf("refused program changed cells: % x", got)
	}
	// After an erase the same write is fine.
	if err := f.Erase(1); err != nil {
		t.Fatal(err)
	}
	if err := f.Program(0x1234, []byte{0x01}); err != nil {
		t.Fatal(err)
	}
}

func TestFlashProgramIsOneOperationPerPage(t *testing.T) {
	f := newTestFlash(t, Geometry{Size: 16 * 4096, PageSize: 256})
	if err := f.Program(200, make([]byte, 600)); err != nil { // pages 0,1,2,3: 56+256+256+32
		t.Fatal(err)
	}
	if s := f.Stats(); s.Programs != 4 || s.Erases != 0 {
		t.Fatalf("stats %+v, want 4 programs", s)
	}
	if err := f.Erase(0); err != nil {
		t.Fatal(err)
	}
	s := f.Stats()
	want := eraseTime4K + programTime(56) + 2*programTime(256) + programTime(32)
	if s.Ops() != 5 || s.SimTime != want {
		t.Fatalf("ops %d time %v, want 5 ops %v", s.Ops(), s.SimTime, want)
	}
	if f.EraseCount(0) != 1 || f.EraseCount(1) != 0 {
		t.Fatal("erase counters wrong")
	}
}

func TestFlashTimingModel(t *testing.T) {
	// A full 256-byte page costs about the W25Q's typical 0.7 ms.
	if d := programTime(256); d < 600*time.Microsecond || d > 800*time.Microsecond {
		t.Fatalf("page program %v", d)
	}
	if eraseTime(65536) != 150*time.Millisecond || eraseTime(4096) != 45*time.Millisecond {
		t.Fatal("erase times")
	}
}

func TestFlashEnduranceLimit(t *testing.T) {
	f := newTestFlash(t, Geometry{Size: 4 * 4096, Endurance: 3})
	for i := 0; i < 3; i++ {
		if err := f.Erase(2); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Erase(2); !errors.Is(err, ErrWornOut) {
		t.Fatalf("4th erase: %v, want ErrWornOut", err)
	}
	if err := f.Erase(1); err != nil {
		t.Fatalf("other block: %v", err)
	}
}

func TestFlashRejectsOutOfRangeAndBadGeometry(t *testing.T) {
	f := newTestFlash(t, Geometry{Size: 4 * 4096})
	if err := f.Program(4*4096-1, []byte{0, 0}); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("program past end: %v", err)
	}
	if err := f.Erase(4); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("erase past end: %v", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), -1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read before start: %v", err)
	}
	for _, g := range []Geometry{{Size: 5000}, {Size: 8192, EraseBlock: 3000}, {Size: 8192, PageSize: 8192 * 2}, {Size: 0}} {
		if _, err := NewFlash(g, 0); err == nil {
			t.Errorf("geometry %+v accepted", g)
		}
	}
}

func TestFlashCleanCutFinishesTheNthOperation(t *testing.T) {
	f := newTestFlash(t, Geometry{Size: 4 * 4096})
	f.CutAfter(2, false)
	if err := f.Program(0, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := f.Program(1, []byte{2}); err != nil {
		t.Fatalf("2nd op must complete: %v", err)
	}
	if err := f.Program(2, []byte{3}); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("3rd op: %v", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("read without power: %v", err)
	}
	f.Reboot()
	if got := readAll(t, f, 0, 3); !bytes.Equal(got, []byte{1, 2, 0xFF}) {
		t.Fatalf("after reboot % x", got)
	}
}

func TestFlashTornProgramClearsASubsetOfBits(t *testing.T) {
	f := newTestFlash(t, Geometry{Size: 4 * 4096})
	f.CutAfter(1, true)
	want := make([]byte, 256)
	if err := f.Program(0, want); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("torn op: %v", err)
	}
	f.Reboot()
	got := readAll(t, f, 0, 256)
	zeros, ones := 0, 0
	for _, b := range got {
		for i := 0; i < 8; i++ {
			if b&(1<<i) == 0 {
				zeros++
			} else {
				ones++
			}
		}
	}
	if zeros == 0 || ones == 0 {
		t.Fatalf("torn program cleared %d of %d bits: not partial", zeros, zeros+ones)
	}
	// Same seed, same cut: same noise.
	g := newTestFlash(t, Geometry{Size: 4 * 4096})
	g.CutAfter(1, true)
	_ = g.Program(0, want)
	g.Reboot()
	if !bytes.Equal(got, readAll(t, g, 0, 256)) {
		t.Fatal("torn program not deterministic for a seed")
	}
}

func TestFlashTornEraseLeavesMixedBlock(t *testing.T) {
	f := newTestFlash(t, Geometry{Size: 4 * 4096})
	if err := f.Program(4096, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	f.CutAfter(1, true)
	if err := f.Erase(1); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("torn erase: %v", err)
	}
	f.Reboot()
	got := readAll(t, f, 4096, 4096)
	ff, other := 0, 0
	for _, b := range got {
		if b == 0xFF {
			ff++
		} else {
			other++
		}
	}
	if ff == 0 || other == 0 {
		t.Fatalf("torn erase: %d bytes 0xFF, %d not: not partial", ff, other)
	}
	if f.EraseCount(1) != 1 {
		t.Fatal("a torn erase still wears the block")
	}
}

func TestFlashFileSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.flash")
	f, err := CreateFlash(path, Geometry{Size: 8 * 4096, EraseBlock: 4096, PageSize: 64}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Erase(3); err != nil {
		t.Fatal(err)
	}
	if err := f.Program(3*4096+5, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	f.CutAfter(1, false)
	_ = f.Program(0, []byte("x"))
	if err := f.Program(1, []byte("y")); !errors.Is(err, ErrPowerCut) {
		t.Fatal(err)
	}
	stats := f.Stats()
	// No Close: a killed process must leave the file as the chip was.
	g, err := OpenFlash(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	reopened := g.Stats()
	if got := readAll(t, g, 3*4096+5, 5); string(got) != "hello" {
		t.Fatalf("contents after reopen: %q", got)
	}
	if got := readAll(t, g, 0, 2); !bytes.Equal(got, []byte{'x', 0xFF}) {
		t.Fatalf("contents after cut: % x", got)
	}
	if g.EraseCount(3) != 1 || g.Geometry().PageSize != 64 || reopened != stats {
		t.Fatalf("state after reopen: erases %d geo %+v stats %+v want %+v", g.EraseCount(3), g.Geometry(), reopened, stats)
	}
}

func TestOpenFlashRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk")
	f, err := CreateFlash(path, Geometry{Size: 4 * 4096}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := OpenFlash(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("missing file opened")
	}
	for _, mut := range []func(b []byte){
		func(b []byte) { b[0] = 'X' },
		func(b []byte) { b[16] = 0xFF; b[17] = 0xFF; b[18] = 0xFF; b[19] = 0xFF; b[20] = 0xFF },
		func(b []byte) { b[12] = 3 },
	} {
		b := readFlashBytes(t, path)
		mut(b)
		if _, err := readFlashFile(bytes.NewReader(b)); err == nil {
			t.Error("corrupt header accepted")
		}
	}
	b := readFlashBytes(t, path)
	if _, err := readFlashFile(bytes.NewReader(b[:len(b)-1])); err == nil {
		t.Error("truncated file accepted")
	}
}

func FuzzReadFlashFile(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed")
	fl, err := CreateFlash(path, Geometry{Size: 2 * 4096}, 0)
	if err != nil {
		f.Fatal(err)
	}
	fl.Close()
	f.Add(readFlashBytes(f, path))
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := readFlashFile(bytes.NewReader(b))
		if err == nil && len(fl.data) != fl.geo.Size {
			t.Fatal("size mismatch")
		}
	})
}

func readFlashBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
