package delta

import "math/bits"

// The model is the set of adaptive probabilities both sides keep for the
// fields of the instruction stream. Every context is computed from values
// already decoded from the stream (previous difference bytes, previous
// literal, the output position), never from image bytes read from flash:
// that is what lets InPlacePlayer.SkipTo re-decode the stream after a power
// cut without reading a flash region that has since been overwritten.

const (
	numCopyLen = iota
	numExtraLen
	numDisp
	numFields

	numWidthBits = 6 // bit-tree over the bit length of a number (1..64)
	numTopBits   = 3 // modelled bits below the leading one; the rest are direct
	numMaxWidth  = 33
	diffTrees    = 4
	sameCtx      = 16

	// maxLitCtxBits bounds the literal context (previous literal's top bits)
	// so that a header can never ask for a large model.
	maxLitCtxBits = 6
)

type numModel struct {
	width []uint16 // 1<<numWidthBits
	top   []uint16 // (numMaxWidth+1) << numTopBits
}

// model lays its probabilities out in one []uint16 so that the device
// player can carve it from its arena.
type model struct {
	lit  []uint16 // (1<<lc) trees of 256
	diff []uint16 // diffTrees trees of 256
	same []uint16 // sameCtx
	num  [numFields]numModel
}

// modelProbs is the number of probabilities a model with lc literal context
// bits holds.
func modelProbs(lc int) int {
	return (1<<lc)*256 + diffTrees*256 + sameCtx +
		numFields*((1<<numWidthBits)+((numMaxWidth+1)<<numTopBits))
}

// newModel lays the model over probs (len >= modelProbs(lc)) and resets it.
func newModel(probs []uint16, lc int) model {
	probs = probs[:modelProbs(lc)]
	for i := range probs {
		probs[i] = probInit
	}
	var m model
	take := func(n int) []uint16 {
		s := probs[:n:n]
		probs = probs[n:]
		return s
	}
	m.lit = take((1 << lc) * 256)
	m.diff = take(diffTrees * 256)
	m.same = take(sameCtx)
	for i := range m.num {
		m.num[i].width = take(1 << numWidthBits)
		m.num[i].top = take((numMaxWidth + 1) << numTopBits)
	}
	return m
}

// history is the decoded-stream state the contexts are computed from.
type history struct {
	diffs   uint32 // last four difference bytes, newest in the low byte
	prevLit byte
	disp    int64 // last copy displacement: source offset minus output offset
	lc      int
}

func (h *history) sameContext(pos uint32) int {
	d1, d4 := byte(h.diffs), byte(h.diffs>>24)
	c := 0
	if d1 == d4 {
		c = 1
	} else if d1 == 0 {
		c = 2
	}
	return c | int(pos&3)<<2
}

func (h *history) diffTree() int {
	t := 0
	if byte(h.diffs) != 0 {
		t = 1
	}
	if byte(h.diffs>>24) != 0 {
		t |= 2
	}
	return t * 256
}

func (h *history) litTree() int { return int(h.prevLit>>(8-h.lc)) * 256 }

// encoder couples the range encoder with the model.
type encoder struct {
	rc *rcEncoder
	m  model
	h  history
}

func newEncoder(lc int) *encoder {
	return &encoder{rc: newRCEncoder(), m: newModel(make([]uint16, modelProbs(lc)), lc), h: history{lc: lc}}
}

func (e *encoder) tree(probs []uint16, v int, nbits int) {
	m := 1
	for i := nbits - 1; i >= 0; i-- {
		b := (v >> uint(i)) & 1
		e.rc.bit(&probs[m], b)
		m = m<<1 | b
	}
}

// number codes v as its bit length (a bit tree) followed by the bits under
// the leading one, the top numTopBits of them modelled per length.
func (e *encoder) number(f int, v uint64) {
	nm := &e.m.num[f]
	x := v + 1
	n := bits.Len64(x)
	e.tree(nm.width, n-1, numWidthBits)
	rest := n - 1
	top := rest
	if top > numTopBits {
		top = numTopBits
	}
	if top > 0 {
		e.tree(nm.top[min(n, numMaxWidth)<<numTopBits:], int(x>>uint(rest-top))&(1<<top-1), top)
	}
	if low := rest - top; low > 0 {
		if low > 32 {
			e.rc.direct(uint32(x>>32), low-32)
			low = 32
		}
		e.rc.direct(uint32(x), low)
	}
}

func (e *encoder) diff(pos uint32, d byte) {
	if d4 := byte(e.h.diffs >> 24); d4 != 0 {
		same := 0
		if d != d4 {
			same = 1
		}
		e.rc.bit(&e.m.same[e.h.sameContext(pos)], same)
		if same == 0 {
			e.h.diffs = e.h.diffs<<8 | uint32(d)
			return
		}
	}
	e.tree(e.m.diff[e.h.diffTree():], int(d), 8)
	e.h.diffs = e.h.diffs<<8 | uint32(d)
}

func (e *encoder) literal(b byte) {
	e.tree(e.m.lit[e.h.litTree():], int(b), 8)
	e.h.prevLit = b
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// decoder mirrors encoder.
type decoder struct {
	rc rcDecoder
	m  model
	h  history
}

func (d *decoder) tree(probs []uint16, nbits int) int {
	m := 1
	for i := 0; i < nbits; i++ {
		m = m<<1 | d.rc.bit(&probs[m])
	}
	return m - 1<<uint(nbits)
}

func (d *decoder) number(f int) uint64 {
	nm := &d.m.num[f]
	n := d.tree(nm.width, numWidthBits) + 1
	rest := n - 1
	top := rest
	if top > numTopBits {
		top = numTopBits
	}
	x := uint64(1)
	if top > 0 {
		x = x<<uint(top) | uint64(d.tree(nm.top[min(n, numMaxWidth)<<numTopBits:], top))
	}
	if low := rest - top; low > 0 {
		if low > 32 {
			x = x<<uint(low-32) | uint64(d.rc.direct(low-32))
			low = 32
		}
		x = x<<uint(low) | uint64(d.rc.direct(low))
	}
	return x - 1
}

func (d *decoder) diff(pos uint32) byte {
	if d4 := byte(d.h.diffs >> 24); d4 != 0 {
		if d.rc.bit(&d.m.same[d.h.sameContext(pos)]) == 0 {
			d.h.diffs = d.h.diffs<<8 | uint32(d4)
			return d4
		}
	}
	v := byte(d.tree(d.m.diff[d.h.diffTree():], 8))
	d.h.diffs = d.h.diffs<<8 | uint32(v)
	return v
}

func (d *decoder) literal() byte {
	b := byte(d.tree(d.m.lit[d.h.litTree():], 8))
	d.h.prevLit = b
	return b
}
