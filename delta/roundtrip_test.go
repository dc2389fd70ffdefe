package delta

import (
	"bytes"
	"fmt"
	"math/rand"
	"sync"
	"testing"
)

// makeCached shares packages between the tests of the generated cases
// (Make is deterministic; under the race detector it dominates the run).
func makeCached(name string, old, new []byte, o Options) ([]byte, error) {
	if o.InPlace && o.EraseBlock == 0 {
		o.EraseBlock = DefaultEraseBlock
	}
	key := fmt.Sprintf("%s/%v/%d", name, o.InPlace, o.EraseBlock)
	makeCache.Lock()
	defer makeCache.Unlock()
	if pkg, ok := makeCache.m[key]; ok {
		return pkg, nil
	}
	pkg, err := Make(old, new, o)
	if err == nil {
		makeCache.m[key] = pkg
	}
	return pkg, err
}

var makeCache = struct {
	sync.Mutex
	m map[string][]byte
}{m: map[string][]byte{}}

// synthetic builds generated old/new pairs covering the edge cases of the
// generator and the in-place plan.
func synthetic() []struct {
	name     string
	old, new []byte
} {
	r := rand.New(rand.NewSource(1))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		r.Read(b)
		return b
	}
	base := rnd(40_000)
	// Code-like content: words with "pointers" that shift by a constant.
	code := make([]byte, 24_000)
	for i := 0; i < len(code); i += 4 {
		v := uint32(0x40080000 + r.Intn(1<<16)*4)
		code[i], code[i+1], code[i+2], code[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	shiftedCode := bytes.Clone(code)
	for i := 0; i < len(shiftedCode); i += 4 {
		v := uint32(shiftedCode[i]) | uint32(shiftedCode[i+1])<<8 | uint32(shiftedCode[i+2])<<16 | uint32(shiftedCode[i+3])<<24
		v += 0x40
		shiftedCode[i], shiftedCode[i+1], shiftedCode[i+2], shiftedCode[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	oneByte := bytes.Clone(base)
	oneByte[20_000] ^= 0x5A
	// Blocks moved around: the second half first, with an insertion.
	shifted := append(append(append([]byte{}, base[20_000:]...), rnd(777)...), base[:20_000]...)
	// A move by more than the region: content at the start of old lands
	// at the end of a much larger new.
	farOld := append(bytes.Clone(base[:10_000]), make([]byte, 5_000)...)
	farNew := append(rnd(60_000), base[:10_000]...)
	return []struct {
		name     string
		old, new []byte
	}{
		{"empty old", nil, base[:30_000]},
		{"empty new", base[:30_000], nil},
		{"both empty", nil, nil},
		{"identical", base, base},
		{"one byte changed", base, oneByte},
		{"one byte image", []byte{1}, []byte{2}},
		{"all changed", base[:20_000], rnd(20_000)},
		{"shifted blocks", base, shifted},
		{"pointers shifted", code, shiftedCode},
		{"inserted at front", base, append(rnd(5000), base...)},
		{"deleted at front", base, base[5000:]},
		{"very large move", farOld, farNew},
		{"grow a lot", base[:10_000], append(bytes.Clone(base[:10_000]), rnd(50_000)...)},
		{"shrink a lot", base, base[35_000:]},
	}
}

// bigBlockCases are the generated cases also run with 64 KiB blocks in
// quick mode (all are, otherwise).
var bigBlockCases = map[string]bool{"shifted blocks": true, "very large move": true, "grow a lot": true, "shrink a lot": true}

// TestRoundTripGenerated round-trips generated pairs covering the edge
// cases, sequential and in place with 4 KiB and 64 KiB blocks.
func TestRoundTripGenerated(t *testing.T) {
	for _, c := range synthetic() {
		for _, mode := range []struct {
			name    string
			inPlace bool
			block   int
		}{{"sequential", false, 0}, {"in-place 4096", true, 4096}, {"in-place 65536", true, 65536}} {
			if quick() && mode.block == 65536 && !bigBlockCases[c.name] {
				continue
			}
			t.Run(c.name+"/"+mode.name, func(t *testing.T) {
				pkg, err := makeCached(c.name, c.old, c.new, Options{InPlace: mode.inPlace, EraseBlock: mode.block, Key: testKey})
				if err != nil {
					t.Fatalf("Make: %v", err)
				}
				got, err := Apply(c.old, pkg, testPub)
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if !bytes.Equal(got, c.new) {
					t.Fatalf("Apply output differs from new (%d vs %d bytes)", len(got), len(c.new))
				}
			})
		}
	}
}

// TestGeneratedSizes checks that the generator finds what it should: an
// identical or one-byte-changed image costs a tiny package, code whose
// pointers all moved by one offset costs almost nothing.
func TestGeneratedSizes(t *testing.T) {
	// The header and signature take about 150 bytes; an in-place package
	// adds about two bytes per step.
	limits := map[string]int{"identical": 300, "one byte changed": 310, "pointers shifted": 400, "inserted at front": 5500}
	for _, c := range synthetic() {
		lim, ok := limits[c.name]
		if !ok {
			continue
		}
		for _, inPlace := range []bool{false, true} {
			pkg, err := makeCached(c.name, c.old, c.new, Options{InPlace: inPlace, Key: testKey})
			if err != nil {
				t.Fatal(err)
			}
			if len(pkg) > lim {
				t.Errorf("%s (in-place %v): package of %d bytes, want <= %d", c.name, inPlace, len(pkg), lim)
			}
		}
	}
}

// TestInPlaceNeverReadsOverwritten applies an in-place package on a region
// that really is overwritten block by block, with a fresh player per step
// repositioned by SkipTo (as after a power cut at every step), and with the
// bytes a written block holds past the new image set to a poison value: any
// read of stale data would change the result.
func TestInPlaceNeverReadsOverwritten(t *testing.T) {
	var cases []struct {
		name     string
		old, new []byte
	}
	for _, c := range synthetic() {
		cases = append(cases, struct {
			name     string
			old, new []byte
		}{c.name, c.old, c.new})
	}
	if !quick() {
		for _, p := range firmwarePairs(t) {
			if p.name == "upy-pybv11-oneline" || p.name == "nrf52-s140-6.1.1_7.3.0" {
				cases = append(cases, struct {
					name     string
					old, new []byte
				}{p.name, p.old, p.new})
			}
		}
	}
	for _, c := range cases {
		pkg, err := makeCached(c.name, c.old, c.new, Options{InPlace: true, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		h, err := Verify(pkg, testPub)
		if err != nil {
			t.Fatal(err)
		}
		region := make([]byte, h.SourceSize())
		for i := range region {
			region[i] = 0xA5 // not erased: garbage past the old image
		}
		copy(region, c.old)
		// the stash slots after the region, as the installer fills them
		bs := int(h.EraseBlock)
		for i, b := range h.Stash {
			copy(region[int(h.Region())+i*bs:], c.old[int(b)*bs:min(int(b+1)*bs, len(c.old))])
		}
		arena := make([]byte, ArenaSize(h))
		block := make([]byte, h.EraseBlock)
		for k := 0; k < h.Steps; k++ {
			p, err := NewInPlacePlayer(bytes.NewReader(pkg), h, arena)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.SkipTo(k); err != nil {
				t.Fatalf("%s: SkipTo(%d): %v", c.name, k, err)
			}
			off, n := p.Target(k)
			if err := p.Next(bytes.NewReader(region), block); err != nil {
				t.Fatalf("%s: step %d: %v", c.name, k, err)
			}
			copy(region[off:], block[:n])
			for i := off + uint32(n); i < off+h.EraseBlock; i++ {
				region[i] = 0x3C
			}
		}
		if !bytes.Equal(region[:h.NewSize], c.new) {
			t.Fatalf("%s: region after all steps differs from new", c.name)
		}
	}
}
