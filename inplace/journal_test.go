package inplace

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func journalFlash(t *testing.T) (*Flash, Layout) {
	t.Helper()
	f := newTestFlash(t, Geometry{Size: 32 * 4096})
	l, err := LayoutFor(f.Geometry())
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

func openJ(t *testing.T, f *Flash, l Layout) *Journal {
	t.Helper()
	j, err := OpenJournal(f, l, make([]byte, recordSize))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJournalEmptyIsIdle(t *testing.T) {
	f, l := journalFlash(t)
	if s := openJ(t, f, l).Last().State; s != StateIdle {
		t.Fatalf("state %v", s)
	}
}

func TestJournalAppendsWithoutEraseAndCompactsWhenFull(t *testing.T) {
	f, l := journalFlash(t)
	j := openJ(t, f, l)
	slots := l.EraseBlock / recordSize
	// The first append on a fresh journal erases block A (it may hold
	// leftovers); then a block's worth of appends need no erase.
	for i := 0; i < slots; i++ {
		if err := j.Append(Record{State: StateDone, Step: uint32(i), Steps: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	if e := f.Stats().Erases; e != 1 {
		t.Fatalf("%d erases for %d records, want 1", e, slots)
	}
	if err := j.Append(Record{State: StateDone, Step: uint32(slots), Steps: 1000}); err != nil {
		t.Fatal(err)
	}
	if e := f.Stats().Erases; e != 2 {
		t.Fatalf("compaction: %d erases, want 2", e)
	}
	// A reopen (reboot) finds the newest record in the other block.
	r := openJ(t, f, l).Last()
	if r.State != StateDone || r.Step != uint32(slots) {
		t.Fatalf("after compaction: %+v", r)
	}
}

// A torn record write (power cut mid-program) fails its CRC: the previous
// record stands, and the next append skips the damaged slot.
func TestJournalTornRecordFallsBackToPrevious(t *testing.T) {
	f, l := journalFlash(t)
	j := openJ(t, f, l)
	if err := j.Append(Record{State: StateScratch, Step: 4, ScratchLen: 4096, ScratchCRC: 0xdeadbeef}); err != nil {
		t.Fatal(err)
	}
	f.CutAfter(1, true)
	if err := j.Append(Record{State: StateDone, Step: 4}); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("torn append: %v", err)
	}
	f.Reboot()
	j = openJ(t, f, l)
	if r := j.Last(); r.State != StateScratch || r.Step != 4 || r.ScratchCRC != 0xdeadbeef {
		t.Fatalf("after torn append: %+v", r)
	}
	if err := j.Append(Record{State: StateDone, Step: 4}); err != nil {
		t.Fatalf("append after torn slot: %v", err)
	}
	if r := openJ(t, f, l).Last(); r.State != StateDone || r.Step != 4 {
		t.Fatalf("after recovery: %+v", r)
	}
}

// A torn erase during compaction leaves the new block half erased, with
// some of its old records still readable: they are older than every record
// of the active block, and garbage fails the CRC.
func TestJournalTornEraseDetected(t *testing.T) {
	f, l := journalFlash(t)
	j := openJ(t, f, l)
	slots := l.EraseBlock / recordSize
	for i := 0; i < 2*slots; i++ { // fill A, compact into B, fill B
		if err := j.Append(Record{State: StateDone, Step: uint32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	f.CutAfter(1, true) // the next append erases A: torn
	if err := j.Append(Record{State: StateDone, Step: uint32(2 * slots)}); !errors.Is(err, ErrPowerCut) {
		t.Fatalf("torn compaction: %v", err)
	}
	f.Reboot()
	var blk [4096]byte
	f.ReadAt(blk[:], int64(l.JournalBlocks[0]*l.EraseBlock))
	if blank(blk[:]) {
		t.Fatal("torn erase left the block clean; the test proves nothing")
	}
	j = openJ(t, f, l)
	if r := j.Last(); r.Step != uint32(2*slots-1) {
		t.Fatalf("after torn erase: newest step %d, want %d", r.Step, 2*slots-1)
	}
	if err := j.Append(Record{State: StateCommitted}); err != nil {
		t.Fatal(err)
	}
	if r := openJ(t, f, l).Last(); r.State != StateCommitted {
		t.Fatalf("after second compaction: %+v", r)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := Record{Seq: 9, State: StateScratch, Step: 77, ScratchLen: 4096, ScratchCRC: 0x12345678, PatchLen: 9999, Steps: 80}
	r.PatchHash[3] = 0xAB
	var b [recordSize]byte
	r.marshal(b[:])
	got, ok := parseRecord(b[:])
	if !ok || got != r {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	for i := range b {
		c := b
		c[i] ^= 0x04
		if _, ok := parseRecord(c[:]); ok {
			t.Fatalf("bit flip in byte %d not detected", i)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, r := range []Record{{Seq: 1, State: StateStaged, PatchLen: 100, Steps: 3}, {Seq: 5, State: StateScratch, Step: 2, ScratchLen: 4096, ScratchCRC: 7}, {Seq: 6, State: StateCommitted}} {
		var b [recordSize]byte
		r.marshal(b[:])
		f.Add(b[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := parseRecord(b)
		if !ok {
			return
		}
		var again [recordSize]byte
		r.marshal(again[:])
		if !bytes.Equal(again[:], b[:recordSize]) {
			t.Fatal("accepted record does not re-encode to itself")
		}
	})
}

func FuzzParseBootRecord(f *testing.F) {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	r := BootRecord{Seq: 3, ImageSize: 1000, TrustedKey: pub, Version: "1.2.3", DeviceType: "meter"}
	var b [bootRecordSize]byte
	if err := r.marshal(b[:]); err != nil {
		f.Fatal(err)
	}
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseBootRecord(b)
		if err != nil {
			return
		}
		var again [bootRecordSize]byte
		if err := r.marshal(again[:]); err != nil {
			t.Fatalf("accepted record does not re-encode: %v", err)
		}
	})
}

// FuzzOpenJournal runs the journal scan over arbitrary journal blocks (what
// torn operations can leave) and then appends: never a panic, and an
// append, once it succeeds, is what the next scan finds.
func FuzzOpenJournal(f *testing.F) {
	var rec [recordSize]byte
	(&Record{Seq: 2, State: StateDone, Step: 1}).marshal(rec[:])
	f.Add(rec[:], []byte{})
	f.Add(bytes.Repeat(rec[:], 3), rec[:])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		fl, err := NewFlash(Geometry{Size: 8 * 1024, EraseBlock: 1024, PageSize: 64}, 0)
		if err != nil {
			t.Fatal(err)
		}
		l, err := LayoutFor(fl.Geometry())
		if err != nil {
			t.Fatal(err)
		}
		if len(a) > 1024 {
			a = a[:1024]
		}
		if len(b) > 1024 {
			b = b[:1024]
		}
		fl.Program(int64(l.JournalBlocks[0]*1024), a)
		fl.Program(int64(l.JournalBlocks[1]*1024), b)
		j, err := OpenJournal(fl, l, make([]byte, recordSize))
		if err != nil {
			t.Fatal(err)
		}
		want := Record{State: StateDone, Step: j.Last().Step + 1}
		if err := j.Append(want); err != nil {
			t.Fatal(err)
		}
		got := openJournalT(t, fl, l).Last()
		if got.State != want.State || got.Step != want.Step {
			t.Fatalf("after append: %+v, want %+v", got, want)
		}
	})
}

func openJournalT(t *testing.T, f *Flash, l Layout) *Journal {
	j, err := OpenJournal(f, l, make([]byte, recordSize))
	if err != nil {
		t.Fatal(err)
	}
	return j
}
