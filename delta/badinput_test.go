package delta

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"math/rand"
	"strings"
	"testing"
)

// smallPair is a pair small enough to corrupt byte by byte.
func smallPair() (old, new []byte) {
	r := rand.New(rand.NewSource(3))
	old = make([]byte, 3000)
	r.Read(old)
	new = append(bytes.Clone(old[:1000]), old[1500:]...)
	new = append(new, []byte("some new literal bytes")...)
	for i := 100; i < 900; i += 40 {
		new[i] += 4
	}
	return old, new
}

func resign(body []byte) []byte {
	return append(bytes.Clone(body), ed25519.Sign(testKey, body)...)
}

func TestTruncatedPackagesAreRefused(t *testing.T) {
	old, new := smallPair()
	for _, inPlace := range []bool{false, true} {
		pkg, err := Make(old, new, Options{InPlace: inPlace, EraseBlock: 1024, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(pkg); n++ {
			if out, err := Apply(old, pkg[:n], testPub); err == nil {
				t.Fatalf("in-place=%v: prefix of %d/%d bytes applied (%d bytes out)", inPlace, n, len(pkg), len(out))
			}
			// Re-signed, the truncation reaches the stream decoder, which
			// must report it (or the hash check must), never panic.
			body := pkg[:max(0, n-sigSize)]
			if out, err := Apply(old, resign(body), testPub); err == nil && !bytes.Equal(out, new) {
				t.Fatalf("in-place=%v: re-signed prefix of %d bytes gave wrong output silently", inPlace, n)
			}
		}
	}
}

func TestCorruptBytesAreRefused(t *testing.T) {
	old, new := smallPair()
	for _, inPlace := range []bool{false, true} {
		pkg, err := Make(old, new, Options{InPlace: inPlace, EraseBlock: 1024, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		for i := range pkg {
			bad := bytes.Clone(pkg)
			bad[i] ^= 0x55
			if _, err := Apply(old, bad, testPub); err == nil {
				t.Fatalf("in-place=%v: flipped byte %d applied", inPlace, i)
			}
			// Re-signed: the decoder and the final hash must catch it.
			body := bad[:len(bad)-sigSize]
			if out, err := Apply(old, resign(body), testPub); err == nil && !bytes.Equal(out, new) {
				t.Fatalf("in-place=%v: re-signed flip of byte %d gave wrong output silently", inPlace, i)
			}
		}
	}
}

func TestPackageForAnotherOldImage(t *testing.T) {
	old, new := smallPair()
	pkg, err := Make(old, new, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(old)
	other[10]++
	if _, err := Apply(other, pkg, testPub); !errors.Is(err, ErrOldImage) {
		t.Fatalf("Apply on another old image: %v, want ErrOldImage", err)
	}
	if _, err := Apply(old[:100], pkg, testPub); !errors.Is(err, ErrOldImage) {
		t.Fatalf("Apply on a shorter old image: %v, want ErrOldImage", err)
	}
}

func TestWrongSignature(t *testing.T) {
	old, new := smallPair()
	pkg, err := Make(old, new, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if _, err := Apply(old, pkg, otherPub); !errors.Is(err, ErrSignature) {
		t.Fatalf("Apply with another key: %v, want ErrSignature", err)
	}
	if _, err := Verify(pkg, otherPub); !errors.Is(err, ErrSignature) {
		t.Fatalf("Verify with another key: %v, want ErrSignature", err)
	}
	if _, err := Verify(pkg, testPub); err != nil {
		t.Fatalf("Verify with the right key: %v", err)
	}
}

// header builds a package header by hand for the bad-header cases.
func craftHeader(h *Header) []byte { return marshalHeader(h) }

func TestAbsurdHeadersAreRefused(t *testing.T) {
	good := Header{OldSize: 100, NewSize: 100, EraseBlock: 4096, InPlace: true}
	cases := []struct {
		name string
		pkg  []byte
		want string
	}{
		{"bad magic", append([]byte("XXXX\x01\x00\x00"), make([]byte, 100)...), "magic"},
		{"future version", append([]byte("FOTD\x09\x00\x00"), make([]byte, 100)...), "format version"},
		{"unknown flag", append([]byte("FOTD\x04\x80\x00"), make([]byte, 100)...), "flags"},
		{"huge model", append([]byte("FOTD\x04\x00\x09"), make([]byte, 100)...), "literal context"},
		{"old size 1 TiB", func() []byte {
			b := []byte("FOTD\x04\x00\x00")
			b = binary.AppendUvarint(b, 1<<40)
			return append(b, make([]byte, 200)...)
		}(), "old size"},
		{"new size over the limit", func() []byte {
			b := []byte("FOTD\x04\x00\x00\x10")
			b = binary.AppendUvarint(b, MaxImageSize+1)
			return append(b, make([]byte, 200)...)
		}(), "new size"},
		{"erase block 1", func() []byte {
			h := good
			h.EraseBlock = 1
			return append(craftHeader(&h), make([]byte, 64)...)
		}(), "erase block"},
		{"erase block 1 GiB", func() []byte {
			h := good
			h.EraseBlock = 1 << 30
			return append(craftHeader(&h), make([]byte, 64)...)
		}(), "erase block"},
		{"schedule runs overlap", func() []byte {
			h := Header{OldSize: 4 * 4096, NewSize: 4 * 4096, EraseBlock: 4096, InPlace: true, Steps: 4,
				Order: []BlockRun{{0, 2}, {2, 3}}}
			return append(craftHeader(&h), make([]byte, 64)...)
		}(), "overlap"},
		{"schedule misses a block", func() []byte {
			h := Header{OldSize: 4 * 4096, NewSize: 4 * 4096, EraseBlock: 4096, InPlace: true, Steps: 4,
				Order: []BlockRun{{3, 1}}}
			return append(craftHeader(&h), make([]byte, 64)...)
		}(), "writes 3 blocks"},
		{"schedule run past the image", func() []byte {
			h := Header{OldSize: 4 * 4096, NewSize: 4 * 4096, EraseBlock: 4096, InPlace: true, Steps: 4,
				Order: []BlockRun{{0, 4}}}
			return append(craftHeader(&h), make([]byte, 64)...)
		}(), "run last block"},
		{"too many runs", func() []byte {
			h := Header{OldSize: 64 * 4096, NewSize: 64 * 4096, EraseBlock: 4096, InPlace: true, Steps: 64}
			for b := uint32(0); b < 64; b++ {
				h.Order = append(h.Order, BlockRun{b, b})
			}
			return append(craftHeader(&h), make([]byte, 64)...)
		}(), "schedule runs"},
		{"stashed block past the old image", func() []byte {
			h := Header{OldSize: 2 * 4096, NewSize: 4 * 4096, EraseBlock: 4096, InPlace: true, Steps: 4,
				Order: []BlockRun{{3, 0}}, Stash: []uint32{2}}
			return append(craftHeader(&h), make([]byte, 64)...)
		}(), "stashed block"},
		{"schedule with the descending flag", func() []byte {
			h := Header{OldSize: 4 * 4096, NewSize: 4 * 4096, EraseBlock: 4096, InPlace: true, Steps: 4,
				Order: []BlockRun{{3, 0}}, Descending: true}
			return append(craftHeader(&h), make([]byte, 64)...)
		}(), "descending"},
		{"device type longer than its bytes", func() []byte {
			b := craftHeader(&Header{OldSize: 1, NewSize: 1})
			return append(b[:7+2+64], 60, 'x')
		}(), "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.pkg)
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse: %v, want ErrFormat mentioning %q", err, c.want)
			}
		})
	}
}

// craftStream signs a package whose instruction stream is written by fn.
func craftStream(h *Header, fn func(e *encoder)) []byte {
	e := newEncoder(h.LitCtxBits)
	fn(e)
	pkg := append(marshalHeader(h), e.rc.finish()...)
	return append(pkg, ed25519.Sign(testKey, pkg)...)
}

func TestOutOfRangeInstructionsAreRefused(t *testing.T) {
	old := bytes.Repeat([]byte{1, 2, 3, 4}, 2048) // 8 KiB
	mk := func(inPlace bool, old []byte) *Header {
		h := &Header{OldSize: uint32(len(old)), NewSize: 8192, InPlace: inPlace, Steps: 1}
		h.OldHash = sha256Sum(old)
		if inPlace {
			h.EraseBlock = 4096
			h.Steps = 2
		}
		return h
	}
	// noEnd codes the flag that starts every instruction: not a copy to
	// the end of the step (first: the step's first instruction).
	noEnd := func(e *encoder, first bool) { e.rc.shift = rateNumber; e.rc.bit(&e.m.end[endContext(first)], 0) }
	cases := []struct {
		name    string
		inPlace bool
		fn      func(e *encoder)
		want    string
	}{
		{"copy past the region", false, func(e *encoder) {
			noEnd(e, true)
			e.numberW(numCopyLen, e.m.firstLen, 100)
			e.rc.bit(&e.m.repD[endContext(true)], 0) // not a recent displacement
			e.number(numDisp, zigzag(8150))
		}, "outside"},
		{"copy before the region", false, func(e *encoder) {
			noEnd(e, true)
			e.numberW(numCopyLen, e.m.firstLen, 100)
			e.rc.bit(&e.m.repD[endContext(true)], 0) // not a recent displacement
			e.number(numDisp, zigzag(-1))
		}, "outside"},
		{"copy longer than the output", false, func(e *encoder) {
			noEnd(e, true)
			e.numberW(numCopyLen, e.m.firstLen, 9000)
		}, "overflows"},
		{"literals longer than the output", false, func(e *encoder) {
			noEnd(e, true)
			e.numberW(numCopyLen, e.m.firstLen, 0)
			e.number(numExtraLen, 1<<40)
		}, "overflow"},
		{"empty instruction", false, func(e *encoder) {
			noEnd(e, true)
			e.numberW(numCopyLen, e.m.firstLen, 0)
			e.number(numExtraLen, 0)
		}, "empty instruction"},
		{"stream ends early", false, func(e *encoder) {
			noEnd(e, true)
			e.numberW(numCopyLen, e.m.firstLen, 0)
			e.number(numExtraLen, 8192)
			e.literal(0, 1)
		}, "ends too early"},
		{"in-place copy of bytes the region does not hold", true, func(e *encoder) {
			// The old image is 5000 bytes: step 1 (block 1) may read
			// new block 0 and old bytes up to 5000, not 5100.
			noEnd(e, true)
			e.numberW(numCopyLen, e.m.firstLen, 0)
			e.number(numExtraLen, 4096)
			for i := 0; i < 4096; i++ {
				e.literal(uint32(i), 9)
			}
			noEnd(e, true)
			e.numberW(numCopyLen, e.m.firstLen, 16)
			e.rc.bit(&e.m.repD[endContext(true)], 0) // not a recent displacement
			e.number(numDisp, zigzag(5100-4096))
			for i := 0; i < 64; i++ {
				e.diff(uint32(i), 0)
			}
		}, "may not read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := old
			if c.inPlace {
				o = old[:5000]
			}
			pkg := craftStream(mk(c.inPlace, o), c.fn)
			out, err := Apply(o, pkg, testPub)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply: %v (%d bytes out), want an error mentioning %q", err, len(out), c.want)
			}
			if out != nil {
				t.Fatalf("Apply returned output with its error")
			}
		})
	}
}

func TestArenaTooSmall(t *testing.T) {
	old, new := smallPair()
	pkg, err := Make(old, new, Options{InPlace: true, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := Parse(pkg)
	if _, err := NewInPlacePlayer(bytes.NewReader(pkg), h, make([]byte, ArenaSize(h)-1)); err == nil {
		t.Fatal("NewInPlacePlayer accepted an arena one byte short")
	}
	if int(h.RAMBudget) != ArenaSize(h) || h.RAMBudget > DefaultRAM {
		t.Fatalf("RAMBudget %d, ArenaSize %d, default budget %d", h.RAMBudget, ArenaSize(h), DefaultRAM)
	}
	if _, err := Make(old, new, Options{InPlace: true, RAM: 1000, Key: testKey}); err == nil {
		t.Fatal("Make accepted a RAM budget below the smallest decoder")
	}
}

// TestLargestHeader: the largest header the format allows (longest
// strings, largest sizes, a full schedule with far-apart blocks) stays
// under the 480 bytes the installer's 512-byte header prefix promises.
func TestLargestHeader(t *testing.T) {
	h := Header{InPlace: true, OldSize: MaxImageSize, NewSize: MaxImageSize, EraseBlock: MinEraseBlock,
		DeviceType: strings.Repeat("d", maxStringLen), Version: strings.Repeat("v", maxStringLen), SeqNo: 1<<32 - 1}
	h.Steps = MaxImageSize / MinEraseBlock
	per := uint32(h.Steps / MaxRuns)
	for i := uint32(0); i < MaxRuns; i++ {
		h.Order = append(h.Order, BlockRun{(i+1)*per - 1, i * per})
	}
	for i := uint32(0); i < MaxStash; i++ {
		h.Stash = append(h.Stash, i*uint32(h.Steps/MaxStash))
	}
	b := append(marshalHeader(&h), make([]byte, sigSize)...)
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.HeaderSize > 480 || len(got.Order) != MaxRuns || len(got.Stash) != MaxStash {
		t.Fatalf("largest header is %d bytes (%d runs, %d stashed), want <= 480", got.HeaderSize, len(got.Order), len(got.Stash))
	}
	t.Logf("largest header: %d bytes", got.HeaderSize)
}
