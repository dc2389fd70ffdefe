package delta

import (
	"math/bits"
	"unsafe"
)

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
	numLitDist
	numLitLen
	numFields
	kindDiff    = numFields
	kindLiteral = numFields + 1
	kindSame    = numFields + 2 // statistics only: the same-difference flag
	kindDiffB   = numFields + 3 // statistics only: difference bytes coded in full
	kindLM      = numFields + 4 // statistics only: literal-match flags
	costKinds   = numFields + 5

	numWidthBits = 6 // bit-tree over the bit length of a number (1..64)
	numTopBits   = 3 // modelled bits below the leading one; the rest are direct
	numMaxWidth  = 24
	diffTrees    = 8
	zeroCtx      = 4 * 16 * 4
	sameCtx      = 16
	litMatchCtx  = 8
	repCtx       = 2
	endCtx       = 2
	contCtx      = 2
	firstLenCtx  = 1 << numWidthBits // the copy length's width tree for a step's first instruction
	repDispCtx   = 10                // 2 "a recent displacement" flags, a 3-bit tree of which

	// minLitMatch is the shortest repeat the literal stream codes as a
	// match into its history: at about 17 bits a match of 4 literals
	// (about 26 bits) pays.
	minLitMatch = 4
	// maxLitWindowLog bounds the literal history a header may ask for.
	maxLitWindowLog = 15

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
	lit      []uint16 // 4 lanes * (1<<lc) trees of 256
	diff     []uint16 // diffTrees trees of 256
	zero     []uint16 // zeroCtx
	same     []uint16 // sameCtx
	same2    []uint16 // sameCtx: "the last non-zero difference of any lane"
	lm       []uint16 // litMatchCtx
	rep      []uint16 // repCtx
	end      []uint16 // endCtx: "copy to the end of the step", first instruction of a step or not
	cont     []uint16 // contCtx: "the copy to the end continues the next block's first copy", first instruction or not
	firstLen []uint16 // firstLenCtx
	repD     []uint16 // repDispCtx: "the displacement is a recent one" (first instruction or not), which one
	num      [numFields]numModel
}

// modelProbs is the number of probabilities a model with lc literal context
// bits holds.
func modelProbs(lc int) int {
	return (4<<lc)*256 + diffTrees*256 + zeroCtx + 2*sameCtx + litMatchCtx + repCtx + endCtx + contCtx + repDispCtx + firstLenCtx +
		numFields*((1<<numWidthBits)+((numMaxWidth+1)<<numTopBits))
}

// countedProbs is the number of probabilities at the start of the model
// that adapt by use count (counts): all but the difference and literal
// trees.
const countedProbs = zeroCtx + 2*sameCtx + litMatchCtx + repCtx + endCtx + contCtx + repDispCtx + firstLenCtx + numFields<<numWidthBits + diffTrees*256

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
	// The small, sparsely used models come first: their probabilities
	// adapt at a rate set by a use count (counts, rangecoder.go).
	m.zero = take(zeroCtx)
	m.same = take(sameCtx)
	m.same2 = take(sameCtx)
	m.lm = take(litMatchCtx)
	m.rep = take(repCtx)
	m.end = take(endCtx)
	m.cont = take(contCtx)
	m.repD = take(repDispCtx)
	m.firstLen = take(firstLenCtx)
	for i := range m.num {
		m.num[i].width = take(1 << numWidthBits)
	}
	m.diff = take(diffTrees * 256)
	for i := range m.num {
		m.num[i].top = take((numMaxWidth + 1) << numTopBits)
	}
	m.lit = take((4 << lc) * 256)
	return m
}

// history is the decoded-stream state the contexts are computed from.
type history struct {
	diffs   uint32  // last four difference bytes, newest in the low byte
	nzPat   byte    // which of the last eight difference bytes are non-zero, newest in bit 0
	lastNZ  [4]byte // last non-zero difference per byte lane (offset mod 4)
	lastAny byte    // last non-zero difference of any lane
	sinceNZ int     // difference bytes since the last non-zero one
	prevLit byte
	// lastMatch: the previous literal-stream item was a match.
	lastMatch bool
	// repDist is the distance of the last literal-stream match.
	repDist uint64
	disp    int64 // last copy displacement: source offset minus output offset
	// stepDisp is the displacement of the current step's first copy
	// (haveStepDisp: it had one), kept for the next step (startStep).
	stepDisp     int64
	haveStepDisp bool
	// follows: the previous step wrote the block just above this one and
	// had a copy; nextDisp is its first copy's displacement, which a copy
	// to the end of this step most likely continues.
	follows  bool
	nextDisp int64
	// reps are the last eight distinct copy displacements, newest first.
	reps [8]int64
	lc   int
	pat  bool // difference trees by pattern (diffTree)
	par  bool // literal trees by offset parity (litTree)
}

// setDisp records the displacement of a copy.
func (h *history) setDisp(d int64) {
	h.disp = d
	i := 0
	for i < len(h.reps)-1 && h.reps[i] != d {
		i++
	}
	copy(h.reps[1:i+1], h.reps[:i])
	h.reps[0] = d
	if !h.haveStepDisp {
		h.stepDisp, h.haveStepDisp = d, true
	}
}

// startStep begins a step. follows: the previous step wrote the block just
// above this one (a descending run), so this block's last bytes most
// likely continue the copy the previous block began with: the previous
// step's first displacement, rather than its last, is the reference.
func (h *history) startStep(follows bool) {
	h.follows = follows && h.haveStepDisp
	if h.follows {
		h.disp = h.stepDisp
		h.nextDisp = h.stepDisp
	}
	h.haveStepDisp = false
}

// endContext is the context of the "copy to the end of the step" flag.
func endContext(first bool) int {
	if first {
		return 1
	}
	return 0
}

// Difference bytes are coded in four parts: is it zero; if not, is it
// the last non-zero difference seen in its byte lane (code that moved keeps
// its pointers' low bytes shifting by the same amount); if not, is it the
// last non-zero difference of any lane (instructions of 3 bytes, as on
// Xtensa, do not stay in one lane); if not, the byte itself. Lanes are the
// image offset mod 4 because 32-bit pointers and instructions are word
// aligned in most of the images this is for. The zero flag's context is
// the lane, which of the last four differences were non-zero (the shape
// of an instruction's changed operand bytes) and how long since the last
// non-zero one: 256 contexts, most of them rare, hence the use counts
// (rangecoder.go).
func (h *history) zeroContext(pos uint32) int {
	c := int(pos&3) | int(h.nzPat&15)<<2
	switch {
	case h.sinceNZ < 4:
	case h.sinceNZ < 16:
		c |= 64
	case h.sinceNZ < 128:
		c |= 128
	default:
		c |= 192
	}
	return c
}

func (h *history) sameContext(pos uint32) int {
	c := int(pos & 3)
	if byte(h.diffs) != 0 {
		c |= 4
	}
	if byte(h.diffs>>24) != 0 {
		c |= 8
	}
	return c
}

// diffTree selects the tree of a difference byte coded in full: by lane
// and whether the previous difference was non-zero, or (pat,
// Header.DiffPattern) by which of the last three differences were
// non-zero, which suits code whose instructions are not word aligned
// (Xtensa's 2- and 3-byte instructions).
func (h *history) diffTree(pos uint32) int {
	if h.pat {
		return int(h.nzPat&7) * 256
	}
	t := int(pos & 3)
	if byte(h.diffs) != 0 {
		t |= 4
	}
	return t * 256
}

func (h *history) pushDiff(pos uint32, d byte) {
	h.diffs = h.diffs<<8 | uint32(d)
	h.nzPat <<= 1
	if d != 0 {
		h.nzPat |= 1
	}
	if d != 0 {
		h.lastNZ[pos&3] = d
		h.lastAny = d
		h.sinceNZ = 0
	} else if h.sinceNZ < 1<<20 {
		h.sinceNZ++
	}
}

// litTree selects the literal model: the previous literal's top lc bits
// and the byte lane (instruction encodings differ per byte of a word).
//
// With par (Header.LitParity) the lane is the offset's parity only and
// the previous literal gives one bit more: Thumb's 2-byte instructions and
// text.
func (h *history) litTree(pos uint32) int {
	if h.par {
		return (int(pos&1)<<(h.lc+1) | int(h.prevLit>>(7-h.lc))) * 256
	}
	return (int(pos&3)<<h.lc | int(h.prevLit>>(8-h.lc))) * 256
}

func (h *history) litMatchContext(pos uint32) int {
	c := int(pos & 3)
	if h.lastMatch {
		c |= 4
	}
	return c
}

// encoder couples the range encoder with the model.
type encoder struct {
	rc *rcEncoder
	m  model
	h  history

	// The literal history for matches within the literal stream: every
	// literal so far, a hash-chain index over its 4-byte strings.
	win     int
	lits    []byte
	head    []int32
	prev    []int32
	indexed int
}

func newEncoder(lc int) *encoder {
	e := &encoder{rc: newRCEncoder(), m: newModel(make([]uint16, modelProbs(lc)), lc), h: history{lc: lc}}
	e.rc.counts = e.m.counts(make([]byte, countedProbs/2))
	return e
}

// counts returns the use counts of the model's counted probabilities over
// c (len countedProbs), reset.
func (m *model) counts(c []byte) counts {
	clear(c)
	return counts{base: uintptr(unsafe.Pointer(&m.zero[0])), c: c}
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
func (e *encoder) number(f int, v uint64) { e.numberW(f, e.m.num[f].width, v) }

// numberW is number with the width tree given.
func (e *encoder) numberW(f int, width []uint16, v uint64) {
	nm := &e.m.num[f]
	e.rc.kind = f
	e.rc.shift = rateNumber
	x := v + 1
	n := bits.Len64(x)
	e.tree(width, n-1, numWidthBits)
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

// dispField codes a copy's displacement: for a copy to the end of a step
// that follows the block above, first a flag "it continues that block's
// first copy" (displacement nextDisp, nothing more); otherwise the change
// from the last displacement.
func (e *encoder) dispField(toEnd, first bool, disp int64) {
	if toEnd && e.h.follows {
		e.rc.kind, e.rc.shift = numDisp, rateNumber
		if disp == e.h.nextDisp {
			e.rc.bit(&e.m.cont[endContext(first)], 0)
			e.h.setDisp(disp)
			return
		}
		e.rc.bit(&e.m.cont[endContext(first)], 1)
	}
	e.rc.kind, e.rc.shift = numDisp, rateNumber
	r := 0
	for i := 1; i < len(e.h.reps); i++ {
		if e.h.reps[i] == disp && disp != e.h.disp {
			r = i
			break
		}
	}
	if r > 0 {
		e.rc.bit(&e.m.repD[endContext(first)], 1)
		e.tree(e.m.repD[2:], r-1, 3)
		e.h.setDisp(disp)
		return
	}
	e.rc.bit(&e.m.repD[endContext(first)], 0)
	e.number(numDisp, zigzag(disp-e.h.disp))
	e.h.setDisp(disp)
}

func (e *encoder) diff(pos uint32, d byte) {
	e.rc.kind = kindDiff
	e.rc.shift = rateDiff
	h := &e.h
	if d == 0 {
		e.rc.bit(&e.m.zero[h.zeroContext(pos)], 0)
		h.pushDiff(pos, d)
		return
	}
	e.rc.bit(&e.m.zero[h.zeroContext(pos)], 1)
	e.rc.kind = kindSame
	if last := h.lastNZ[pos&3]; last != 0 {
		if d == last {
			e.rc.bit(&e.m.same[h.sameContext(pos)], 0)
			h.pushDiff(pos, d)
			return
		}
		e.rc.bit(&e.m.same[h.sameContext(pos)], 1)
	}
	if a := h.lastAny; a != 0 && a != h.lastNZ[pos&3] {
		if d == a {
			e.rc.bit(&e.m.same2[h.sameContext(pos)], 0)
			h.pushDiff(pos, d)
			return
		}
		e.rc.bit(&e.m.same2[h.sameContext(pos)], 1)
	}
	e.rc.kind = kindDiffB
	e.tree(e.m.diff[h.diffTree(pos):], int(d), 8)
	h.pushDiff(pos, d)
}

const litHashBits = 16

func litHash(b []byte) uint32 {
	return (uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24) * 2654435761 >> (32 - litHashBits)
}

func (e *encoder) pushLits(b ...byte) {
	e.lits = append(e.lits, b...)
	if e.win == 0 {
		return
	}
	if e.head == nil {
		e.head = make([]int32, 1<<litHashBits)
		for i := range e.head {
			e.head[i] = -1
		}
	}
	for e.indexed+4 <= len(e.lits) {
		hh := litHash(e.lits[e.indexed:])
		e.prev = append(e.prev, e.head[hh])
		e.head[hh] = int32(e.indexed)
		e.indexed++
	}
}

// findLitMatch returns the longest earlier occurrence within the window
// of a prefix of data (distance back, length), looking at a bounded
// number of candidates.
func (e *encoder) findLitMatch(data []byte) (int, int) {
	if e.win == 0 || len(data) < minLitMatch || e.head == nil {
		return 0, 0
	}
	n := len(e.lits)
	bestD, bestL := 0, 0
	// The last match's distance costs one bit: prefer it unless another
	// candidate is clearly longer.
	if r := int(e.h.repDist); r > 0 && r <= n && r <= e.win {
		bestD, bestL = r, commonPrefix(e.lits[n-r:], data)
		bestL += 2 // its bonus, removed below
	}
	cand := e.head[litHash(data)]
	for depth := 0; cand >= 0 && depth < 64; depth++ {
		d := n - int(cand)
		if d > e.win {
			break
		}
		l := commonPrefix(e.lits[cand:], data)
		if l > bestL {
			bestD, bestL = d, l
		}
		cand = e.prev[cand]
	}
	if bestD == int(e.h.repDist) && bestD > 0 {
		bestL = commonPrefix(e.lits[n-bestD:], data)
	}
	return bestD, bestL
}

// literals codes a run of literal bytes at image offset pos: repeats of
// the literal history as matches, the rest byte by byte.
func (e *encoder) literals(pos uint32, data []byte) {
	for i := 0; i < len(data); {
		if e.win > 0 {
			ctx := e.h.litMatchContext(pos + uint32(i))
			e.rc.kind = kindLM
			e.rc.shift = rateNumber
			if d, l := e.findLitMatch(data[i:]); l >= minLitMatch {
				e.rc.bit(&e.m.lm[ctx], 1)
				rc := 0
				if e.h.lastMatch {
					rc = 1
				}
				if uint64(d) == e.h.repDist {
					e.rc.bit(&e.m.rep[rc], 1)
				} else {
					e.rc.bit(&e.m.rep[rc], 0)
					e.number(numLitDist, uint64(d-1))
					e.h.repDist = uint64(d)
				}
				e.number(numLitLen, uint64(l-minLitMatch))
				e.pushLits(data[i : i+l]...)
				e.h.prevLit = data[i+l-1]
				e.h.lastMatch = true
				i += l
				continue
			}
			e.rc.bit(&e.m.lm[ctx], 0)
		}
		e.literal(pos+uint32(i), data[i])
		e.pushLits(data[i])
		e.h.lastMatch = false
		i++
	}
}

func (e *encoder) literal(pos uint32, b byte) {
	e.rc.kind = kindLiteral
	e.rc.shift = rateLiteral
	e.tree(e.m.lit[e.h.litTree(pos):], int(b), 8)
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

func (d *decoder) number(f int) uint64 { return d.numberW(f, d.m.num[f].width) }

func (d *decoder) numberW(f int, width []uint16) uint64 {
	d.rc.shift = rateNumber
	nm := &d.m.num[f]
	n := d.tree(width, numWidthBits) + 1
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
	d.rc.shift = rateDiff
	h := &d.h
	if d.rc.bit(&d.m.zero[h.zeroContext(pos)]) == 0 {
		h.pushDiff(pos, 0)
		return 0
	}
	if last := h.lastNZ[pos&3]; last != 0 {
		if d.rc.bit(&d.m.same[h.sameContext(pos)]) == 0 {
			h.pushDiff(pos, last)
			return last
		}
	}
	if a := h.lastAny; a != 0 && a != h.lastNZ[pos&3] {
		if d.rc.bit(&d.m.same2[h.sameContext(pos)]) == 0 {
			h.pushDiff(pos, a)
			return a
		}
	}
	v := byte(d.tree(d.m.diff[h.diffTree(pos):], 8))
	h.pushDiff(pos, v)
	return v
}

func (d *decoder) literal(pos uint32) byte {
	d.rc.shift = rateLiteral
	b := byte(d.tree(d.m.lit[d.h.litTree(pos):], 8))
	d.h.prevLit = b
	return b
}

// Adaptation rates (probability update shifts) per kind of field: literals
// and instruction fields change statistics quickly, differences slowly.
// Measured on the shared pairs (in-place, total of four): shifts 4/5/4
// give 129,531 bytes, 5/5/5 129,812, 4/4/4 129,569, 4/6/4 130,984.
const (
	rateNumber  = 4
	rateDiff    = 5
	rateLiteral = 4
)
