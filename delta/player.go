package delta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// windowSize is the read-ahead over the package the player keeps in its
// arena: the stream is read front to back, so a small window is enough.
const windowSize = 256

// ArenaSize is the exact number of bytes NewInPlacePlayer needs for hdr:
// the model's probabilities, the package read window, the literal history,
// the use counts of the counted probabilities (4 bits each) and two bytes
// of slack to align the probabilities. It excludes the erase-block output
// buffer, which the installer owns.
func ArenaSize(hdr *Header) int {
	return 2*modelProbs(hdr.LitCtxBits) + countedProbs/2 + windowSize + hdr.LitWindow + 2
}

// window is the byteSource of the device player: a windowSize-byte cache
// over the stream part of the package.
type window struct {
	ra        io.ReaderAt
	base      int64 // stream offset in the package
	size      int64 // stream length
	pos       int64 // next stream byte
	buf       []byte
	bufStart  int64
	bufLen    int
	err       error
	bytesRead int64
}

func (w *window) next() (byte, bool) {
	if w.pos >= w.size || w.err != nil {
		return 0, false
	}
	if w.pos < w.bufStart || w.pos >= w.bufStart+int64(w.bufLen) {
		n := int(min(int64(len(w.buf)), w.size-w.pos))
		got, err := w.ra.ReadAt(w.buf[:n], w.base+w.pos)
		if got < n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			w.err = fmt.Errorf("read package at byte %d: %w", w.base+w.pos, err)
			return 0, false
		}
		w.bufStart, w.bufLen = w.pos, n
		w.bytesRead += int64(n)
	}
	b := w.buf[w.pos-w.bufStart]
	w.pos++
	return b, true
}

// Stats counts decoded instructions.
type Stats struct {
	Instructions int // copy-and-literal instructions
	Copies       int // instructions with a copy
	CopyBytes    int64
	NonZeroDiffs int64 // copied bytes changed by a non-zero difference
	LiteralBytes int64
	StreamBytes  int64 // compressed bytes read from the package
}

// InPlacePlayer decodes a package step by step with memory from a fixed
// arena. For an in-place package each step produces one erase block of the
// new image; for a sequential package there is one step producing the whole
// new image (host side). The player keeps no pointer into flash contents:
// its state is the stream position and the model, so SkipTo can rebuild it
// after a power cut by re-decoding from the start without reading flash.
type InPlacePlayer struct {
	// Stats counts what the player has decoded so far.
	Stats Stats
	hdr   *Header
	win   window
	probs []uint16
	dec   decoder
	step  int
	hist  []byte // literal history ring (LitWindow bytes)
	cnt   []byte // use counts of the model, 4 bits each (countedProbs/2 bytes)
	hn    uint64 // literal-stream bytes so far
}

// NewInPlacePlayer prepares a player for the package in patch (whose header
// hdr was returned by Parse or Verify) with all its memory taken from
// arena, which must hold at least ArenaSize(hdr) bytes.
func NewInPlacePlayer(patch io.ReaderAt, hdr *Header, arena []byte) (*InPlacePlayer, error) {
	need := ArenaSize(hdr)
	if len(arena) < need {
		return nil, fmt.Errorf("delta: arena of %d bytes, the package needs %d", len(arena), need)
	}
	// The probabilities are uint16s laid over the arena; skip a byte if the
	// arena starts at an odd address.
	skip := int(uintptr(unsafe.Pointer(unsafe.SliceData(arena))) & 1)
	n := modelProbs(hdr.LitCtxBits)
	probs := unsafe.Slice((*uint16)(unsafe.Pointer(&arena[skip])), n)
	rest := arena[skip+2*n:]
	p := &InPlacePlayer{
		hdr:   hdr,
		probs: probs,
		win:   window{ra: patch, base: int64(hdr.HeaderSize), size: int64(hdr.StreamSize), buf: rest[:windowSize]},
		hist:  rest[windowSize : windowSize+hdr.LitWindow],
		cnt:   rest[windowSize+hdr.LitWindow : windowSize+hdr.LitWindow+countedProbs/2],
	}
	p.reset()
	return p, nil
}

func (p *InPlacePlayer) reset() {
	p.dec.m = newModel(p.probs, p.hdr.LitCtxBits)
	p.dec.h = history{lc: p.hdr.LitCtxBits, pat: p.hdr.DiffPattern, par: p.hdr.LitParity}
	p.win.pos, p.win.bufStart, p.win.bufLen, p.win.err = 0, 0, 0, nil
	p.dec.rc.init(&p.win)
	p.dec.rc.counts = p.dec.m.counts(p.cnt)
	p.step = 0
	p.hn = 0
	p.Stats = Stats{}
}

// Step is the index of the next step Next decodes.
func (p *InPlacePlayer) Step() int { return p.step }

// Target is where step k writes in the image region: n bytes at off, n <=
// EraseBlock (the last block of the image may be short). For a sequential
// package step 0 is the whole new image.
func (p *InPlacePlayer) Target(k int) (off uint32, n int) {
	return target(p.hdr, k)
}

func target(h *Header, k int) (uint32, int) {
	if !h.InPlace {
		return 0, int(h.NewSize)
	}
	off := uint32(h.blockAt(k)) * h.EraseBlock
	return off, int(min(h.EraseBlock, h.NewSize-off))
}

// blockAt is the region block step k writes.
func (h *Header) blockAt(k int) int {
	if h.Order != nil {
		for _, r := range h.Order {
			n := r.Len()
			if k < n {
				if r.First <= r.Last {
					return int(r.First) + k
				}
				return int(r.First) - k
			}
			k -= n
		}
		return -1
	}
	if h.Descending {
		return h.Steps - 1 - k
	}
	return k
}

// stepOf is the step that writes region block b, or -1 if none does.
func (h *Header) stepOf(b int) int {
	if !h.InPlace || b < 0 || b >= h.Steps {
		return -1
	}
	if h.rank != nil {
		return int(h.rank[b])
	}
	if h.Order != nil {
		base := 0
		for _, r := range h.Order {
			lo, hi := min(r.First, r.Last), max(r.First, r.Last)
			if uint32(b) >= lo && uint32(b) <= hi {
				if r.First <= r.Last {
					return base + b - int(r.First)
				}
				return base + int(r.First) - b
			}
			base += r.Len()
		}
		return -1
	}
	if h.Descending {
		return h.Steps - 1 - b
	}
	return b
}

// writtenBefore reports whether region block b has been written with new
// data by the steps before step k.
func writtenBefore(h *Header, b, k int) bool {
	s := h.stepOf(b)
	return s >= 0 && s < k
}

// stashSlot is the stash slot holding old block b, or -1.
func (h *Header) stashSlot(b int64) int {
	if h.stashSet != nil {
		if b < 0 || b >= int64(len(h.stashSet)) || !h.stashSet[b] {
			return -1
		}
	}
	for i, x := range h.Stash {
		if int64(x) == b {
			return i
		}
	}
	return -1
}

// validEnd is the end of the readable bytes of the block holding source
// offset x while step k is decoded: in the image region, old bytes below
// OldSize in blocks not yet written, new bytes below NewSize in written
// ones; past the region (region + old offset), old bytes of stashed
// blocks. A result <= x means x is not readable.
func validEnd(h *Header, x int64, k int) int64 {
	if !h.InPlace {
		return int64(h.OldSize)
	}
	bs := int64(h.EraseBlock)
	if r := int64(h.Region()); x >= r {
		b := (x - r) / bs
		if h.stashSlot(b) < 0 {
			return x
		}
		return r + min((b+1)*bs, int64(h.OldSize))
	}
	b := x / bs
	lim := int64(h.OldSize)
	if writtenBefore(h, int(b), k) {
		lim = int64(h.NewSize)
	}
	return min((b+1)*bs, lim)
}

// Next decodes step Step() into out[:n] (n from Target), reading copy
// sources from src, the whole image region as it is now followed by the
// stash slots (Header.SourceSize bytes), and advances.
func (p *InPlacePlayer) Next(src io.ReaderAt, out []byte) error {
	if p.step >= p.hdr.Steps {
		return fmt.Errorf("delta: no step %d, the package has %d", p.step, p.hdr.Steps)
	}
	_, n := p.Target(p.step)
	if len(out) < n {
		return fmt.Errorf("delta: output buffer of %d bytes, step %d writes %d", len(out), p.step, n)
	}
	if src == nil {
		return errors.New("delta: Next needs a source")
	}
	if err := p.run(src, out[:n]); err != nil {
		return fmt.Errorf("delta: step %d: %w", p.step, err)
	}
	p.step++
	return nil
}

// SkipTo repositions the player at step k, re-decoding the stream from the
// start if k is behind, without reading flash and without output.
func (p *InPlacePlayer) SkipTo(k int) error {
	if k < 0 || k > p.hdr.Steps {
		return fmt.Errorf("delta: skip to step %d of %d", k, p.hdr.Steps)
	}
	if k < p.step {
		p.reset()
	}
	for p.step < k {
		if err := p.run(nil, nil); err != nil {
			return fmt.Errorf("delta: skipping step %d: %w", p.step, err)
		}
		p.step++
	}
	return nil
}

// run decodes one step. With src == nil it only advances the decoder.
func (p *InPlacePlayer) run(src io.ReaderAt, out []byte) error {
	h := p.hdr
	off, n := p.Target(p.step)
	d := &p.dec
	region := int64(h.Region())
	// Copy sources lie in the region or, past it, in the stash space
	// (region + old offset).
	srcEnd := region
	if len(h.Stash) > 0 {
		srcEnd += int64(h.OldSize)
	}
	if p.step > 0 {
		d.h.startStep(h.blockAt(p.step-1) == h.blockAt(p.step)+1)
	}
	o := 0
	for o < n {
		d.rc.shift = rateNumber
		toEnd := d.rc.bit(&d.m.end[endContext(o == 0)]) == 1
		var cl uint64
		if toEnd {
			cl = uint64(n - o) // a copy to the end of the step, no literals
		} else {
			w := d.m.num[numCopyLen].width
			if o == 0 {
				w = d.m.firstLen
			}
			cl = d.numberW(numCopyLen, w)
		}
		if cl > uint64(n-o) {
			return p.streamErr(fmt.Errorf("%w: copy of %d bytes at output byte %d overflows the %d-byte step", ErrFormat, cl, o, n))
		}
		if cl > 0 {
			var disp int64
			if d.rc.shift = rateNumber; toEnd && d.h.follows && d.rc.bit(&d.m.cont[endContext(o == 0)]) == 0 {
				disp = d.h.nextDisp
			} else if d.rc.bit(&d.m.repD[endContext(o == 0)]) == 1 {
				r := d.tree(d.m.repD[2:], 3) + 1
				if r >= len(d.h.reps) {
					return p.streamErr(fmt.Errorf("%w: recent displacement %d of %d", ErrFormat, r, len(d.h.reps)-1))
				}
				disp = d.h.reps[r]
			} else {
				dd := unzigzag(d.number(numDisp))
				if lim := srcEnd + int64(h.NewSize); dd > lim || dd < -lim {
					return p.streamErr(fmt.Errorf("%w: displacement change %d out of range", ErrFormat, dd))
				}
				disp = d.h.disp + dd
			}
			s := int64(off) + int64(o) + disp
			if s < 0 || s+int64(cl) > srcEnd || s < region && s+int64(cl) > region {
				return p.streamErr(fmt.Errorf("%w: copy source %d+%d outside the %d-byte region and the stash", ErrFormat, s, cl, region))
			}
			// The source must hold what the generator planned: old data
			// in blocks not yet written, new data in written ones.
			for x, end := s, s+int64(cl); x < end; {
				ve := validEnd(h, x, p.step)
				if x >= ve {
					return p.streamErr(fmt.Errorf("%w: copy source %d+%d reads byte %d, which step %d may not read", ErrFormat, s, cl, x, p.step))
				}
				x = ve
			}
			d.h.setDisp(disp)
			var dst []byte
			if out != nil {
				dst = out[o : o+int(cl)]
				if err := p.readSource(src, dst, s, region); err != nil {
					return err
				}
			}
			for i := 0; i < int(cl); {
				pos := off + uint32(o+i)
				if h.WordDiffs && pos&3 == 0 && i+4 <= int(cl) {
					// A word-aligned group: the four differences are the
					// bytes of one 32-bit little-endian difference.
					var w uint32
					for j := 0; j < 4; j++ {
						df := d.diff(pos + uint32(j))
						w |= uint32(df) << (8 * j)
						if df != 0 {
							p.Stats.NonZeroDiffs++
						}
					}
					if dst != nil {
						binary.LittleEndian.PutUint32(dst[i:], binary.LittleEndian.Uint32(dst[i:])+w)
					}
					i += 4
					continue
				}
				df := d.diff(pos)
				if dst != nil {
					dst[i] += df
				}
				if df != 0 {
					p.Stats.NonZeroDiffs++
				}
				i++
			}
			p.Stats.Copies++
			p.Stats.CopyBytes += int64(cl)
			o += int(cl)
		}
		var ll uint64
		if !toEnd {
			ll = d.number(numExtraLen)
		}
		if ll > uint64(n-o) {
			return p.streamErr(fmt.Errorf("%w: %d literal bytes at output byte %d overflow the %d-byte step", ErrFormat, ll, o, n))
		}
		if cl == 0 && ll == 0 {
			return p.streamErr(fmt.Errorf("%w: empty instruction at output byte %d", ErrFormat, o))
		}
		if err := p.literals(off+uint32(o), out, o, int(ll)); err != nil {
			return p.streamErr(err)
		}
		o += int(ll)
		p.Stats.Instructions++
		p.Stats.LiteralBytes += int64(ll)
		p.Stats.StreamBytes = p.win.pos
		if err := p.streamErr(nil); err != nil {
			return err
		}
	}
	return nil
}

// readSource reads a copy's source bytes at source offset s: the region
// in one read, stashed blocks from their slots (region + slot * erase
// block), one read per block.
func (p *InPlacePlayer) readSource(src io.ReaderAt, dst []byte, s, region int64) error {
	if s < region {
		if _, err := src.ReadAt(dst, s); err != nil {
			return fmt.Errorf("read source at %d+%d: %w", s, len(dst), err)
		}
		return nil
	}
	bs := int64(p.hdr.EraseBlock)
	for x := s - region; len(dst) > 0; {
		b := x / bs
		n := min(int64(len(dst)), (b+1)*bs-x)
		at := region + int64(p.hdr.stashSlot(b))*bs + x%bs
		if _, err := src.ReadAt(dst[:n], at); err != nil {
			return fmt.Errorf("read stash at %d+%d: %w", at, n, err)
		}
		dst, x = dst[n:], x+n
	}
	return nil
}

// streamErr prefers a read or truncation error of the stream over err, as
// garbage decoded past the end is its consequence.
func (p *InPlacePlayer) streamErr(err error) error {
	if p.win.err != nil {
		return p.win.err
	}
	if p.dec.rc.err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, p.dec.rc.err)
	}
	return err
}

// literals decodes a run of n literal-stream bytes at image offset pos
// into out[o:] (out may be nil when skipping).
func (p *InPlacePlayer) literals(pos uint32, out []byte, o, n int) error {
	d := &p.dec
	mask := uint64(len(p.hist) - 1)
	for i := 0; i < n; {
		d.rc.shift = rateNumber
		if len(p.hist) > 0 && d.rc.bit(&d.m.lm[d.h.litMatchContext(pos+uint32(i))]) == 1 {
			rc := 0
			if d.h.lastMatch {
				rc = 1
			}
			dist := d.h.repDist
			d.rc.shift = rateNumber
			if d.rc.bit(&d.m.rep[rc]) == 0 {
				dist = d.number(numLitDist) + 1
				d.h.repDist = dist
			}
			ml := d.number(numLitLen) + minLitMatch
			if ml > uint64(n-i) || dist == 0 || dist > uint64(len(p.hist)) || dist > p.hn {
				return fmt.Errorf("%w: literal match of %d bytes at distance %d does not fit (run of %d, history %d)", ErrFormat, ml, dist, n-i, min(p.hn, uint64(len(p.hist))))
			}
			var b byte
			for j := 0; j < int(ml); j++ {
				b = p.hist[(p.hn-dist)&mask]
				p.hist[p.hn&mask] = b
				p.hn++
				if out != nil {
					out[o+i+j] = b
				}
			}
			d.h.prevLit = b
			d.h.lastMatch = true
			i += int(ml)
			continue
		}
		b := d.literal(pos + uint32(i))
		if len(p.hist) > 0 {
			p.hist[p.hn&mask] = b
		}
		p.hn++
		if out != nil {
			out[o+i] = b
		}
		d.h.lastMatch = false
		i++
	}
	return nil
}
