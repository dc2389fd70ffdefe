package delta

import (
	"bytes"
	"testing"
)

// TestPlayerAllocatesNothing proves the device-side claim: once made, the
// player decodes every step (and rewinds with SkipTo) without a single heap
// allocation, so its memory is the arena plus the caller's erase block.
func TestPlayerAllocatesNothing(t *testing.T) {
	// New literal content that repeats within a block, so that the
	// package uses the literal history too.
	old, _ := smallPair()
	old = bytes.Repeat(old, 4)
	lit := bytes.Repeat([]byte("a literal phrase that repeats, 0123456789 "), 15)
	new := append(append(bytes.Clone(old[:5000]), lit...), old[5000:]...)
	pkg, err := Make(old, new, Options{InPlace: true, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Verify(pkg, testPub)
	if err != nil {
		t.Fatal(err)
	}
	if h.LitWindow == 0 {
		t.Fatal("the package uses no literal history; the test wants one")
	}
	arena := make([]byte, ArenaSize(h))
	block := make([]byte, h.EraseBlock)
	src := bytes.NewReader(old)
	p, err := NewInPlacePlayer(bytes.NewReader(pkg), h, arena)
	if err != nil {
		t.Fatal(err)
	}
	var runErr error
	allocs := testing.AllocsPerRun(5, func() {
		if err := p.SkipTo(0); err != nil {
			runErr = err
		}
		for p.Step() < h.Steps {
			// The sources are not what the plan expects after step 0
			// (old stays unchanged), which changes the output bytes but
			// not the decoding work.
			if err := p.Next(src, block); err != nil {
				runErr = err
				return
			}
		}
	})
	if runErr != nil {
		t.Fatal(runErr)
	}
	if allocs != 0 {
		t.Fatalf("player made %.1f allocations per full pass, want 0", allocs)
	}
}

// TestSkipToMatchesContinuousDecoding checks resumption: a player moved to
// step k with SkipTo (from the start, from behind and from ahead) produces
// the same block as one that decoded steps 0..k-1 itself.
func TestSkipToMatchesContinuousDecoding(t *testing.T) {
	old, new := smallPair()
	pkg, err := Make(old, new, Options{InPlace: true, EraseBlock: 256, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := Parse(pkg)
	src := bytes.NewReader(old)
	cont, _ := NewInPlacePlayer(bytes.NewReader(pkg), h, make([]byte, ArenaSize(h)))
	jumper, _ := NewInPlacePlayer(bytes.NewReader(pkg), h, make([]byte, ArenaSize(h)))
	want := make([]byte, h.EraseBlock)
	got := make([]byte, h.EraseBlock)
	for k := 0; k < h.Steps; k++ {
		if err := cont.Next(src, want); err != nil {
			t.Fatal(err)
		}
		// alternate between skipping forward from the start and back
		// from the end
		if err := jumper.SkipTo(h.Steps); err != nil {
			t.Fatal(err)
		}
		if err := jumper.SkipTo(k); err != nil {
			t.Fatal(err)
		}
		if err := jumper.Next(src, got); err != nil {
			t.Fatal(err)
		}
		_, n := cont.Target(k)
		if !bytes.Equal(got[:n], want[:n]) {
			t.Fatalf("step %d after SkipTo differs from continuous decoding", k)
		}
	}
	if err := jumper.SkipTo(h.Steps + 1); err == nil {
		t.Fatal("SkipTo past the last step accepted")
	}
	if err := cont.Next(src, got); err == nil {
		t.Fatal("Next after the last step accepted")
	}
}
