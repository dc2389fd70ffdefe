package tree

import (
	"bytes"
	"testing"
)

// FuzzParse feeds the package decoder (header, index frame, index) arbitrary
// bytes: it must return an error or a header whose every index and length
// stays inside the package, and never panic or allocate without bound. The
// seed corpus is real packages of the synthetic tree and pieces of them.
func FuzzParse(f *testing.F) {
	oldDir, newDir := synthetic(f)
	pkg := makePkg(f, oldDir, newDir)
	empty := makePkg(f, oldDir, oldDir)
	for _, s := range [][]byte{pkg, empty, pkg[:len(pkg)/2], pkg[:fixedHeader+8], xorAt(pkg, fixedHeader+3), []byte(magic)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if h.DataOff < int64(fixedHeader) || h.DataOff+h.DataLen > int64(len(b)) {
			t.Fatalf("data frame %d+%d outside a %d-byte package", h.DataOff, h.DataLen, len(b))
		}
		for _, p := range h.Puts {
			if !validPath(p.Path) {
				t.Fatalf("accepted path %q", p.Path)
			}
		}
		_ = h.Summary()
	})
}

// FuzzDecodeIndex feeds the index decoder directly, past zstd.
func FuzzDecodeIndex(f *testing.F) {
	oldDir, newDir := synthetic(f)
	pkg := makePkg(f, oldDir, newDir)
	h, err := Parse(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		f.Fatal(err)
	}
	idx := h.encodeIndex()
	f.Add(idx)
	f.Add(idx[:len(idx)/2])
	f.Add([]byte{0, 1, 0, 1, 'a', 'f', 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		if err := h.decodeIndex(b); err != nil {
			return
		}
		again := h.encodeIndex()
		var h2 Header
		if err := h2.decodeIndex(again); err != nil {
			t.Fatalf("a decoded index does not decode after encoding: %v", err)
		}
	})
}
