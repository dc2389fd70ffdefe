package delta

import (
	"errors"
	"math"
	"unsafe"
)

// The entropy coder is an adaptive binary range coder of the LZMA family
// (adaptation shifts per field kind, model.go; carry propagation through a cached byte) with 15-bit
// rather than LZMA's 11-bit probabilities: the difference stream is mostly
// zeros, and an 11-bit probability cannot go below 31/2048, a floor of 0.022
// bits per zero (1.8 KiB on a 650 KiB image); at 15 bits it is 0.0014.
// It was picked over LZMA itself because the patch streams
// (instruction fields, difference bytes, literals) are already free of
// long-range redundancy once the matcher has run: what is left pays for a
// good per-field model, not for a dictionary, and a binary range coder
// decodes with a few KiB of model state and no window at all.

const (
	probBits  = 15
	probOne   = 1 << probBits
	probInit  = probOne / 2
	rcTopBits = 24
	rcTop     = 1 << rcTopBits
)

// errStreamOverrun is returned when a decoder runs past the end of the
// compressed stream by more than the coder's flush bytes: the stream is
// truncated or corrupt.
var errStreamOverrun = errors.New("compressed stream ends too early")

// rcEncoder is the encoding half of the range coder.
type rcEncoder struct {
	low       uint64
	rng       uint32
	cache     byte
	cacheSize int64
	out       []byte
	first     bool // the very first byte the LZMA scheme emits is always 0; it is dropped
	// cost, when set, accumulates the information content of the coded
	// bits per field kind (statistics for tuning and delta info).
	cost *[costKinds]float64
	kind int
	// shift is the adaptation rate of the model being coded.
	shift uint8
	counts
}

// counts holds a use count per probability for the first len(c)
// probabilities of the model (those at or above base): a probability that
// has been used n times moves by 1/(n+countStart) of the way towards the
// coded bit, until that rate reaches its model's 1/2^shift. A context seen
// a few times is then already close to its bit frequency instead of still
// drifting from 1/2, which is what a large, sparsely used set of contexts
// costs with a fixed rate.
type counts struct {
	base uintptr
	c    []byte
}

// countStart is the divisor of a probability's first update.
const countStart = 4

// countRate[n] is 65536/(n+countStart).
var countRate = func() (r [256]uint32) {
	for i := range r {
		r[i] = 65536 / uint32(i+countStart)
	}
	return r
}()

// update moves *p towards bit b (*p is the probability of a 0).
func (c *counts) update(p *uint16, b int, shift uint8) {
	if i := (uintptr(unsafe.Pointer(p)) - c.base) / 2; i < uintptr(len(c.c))*2 {
		s := (i & 1) * 4
		if n := c.c[i/2] >> s & 15; int(n)+countStart < 1<<shift && n < 15 {
			c.c[i/2] += 1 << s
			r := countRate[n]
			if b == 0 {
				*p += uint16((uint32(probOne-*p) * r) >> 16)
			} else {
				*p -= uint16((uint32(*p) * r) >> 16)
			}
			return
		}
	}
	if b == 0 {
		*p += (probOne - *p) >> shift
	} else {
		*p -= *p >> shift
	}
}

func newRCEncoder() *rcEncoder {
	return &rcEncoder{rng: 0xFFFFFFFF, cacheSize: 1, first: true}
}

func (e *rcEncoder) emit(b byte) {
	if e.first {
		e.first = false
		return
	}
	e.out = append(e.out, b)
}

func (e *rcEncoder) shiftLow() {
	if uint32(e.low) < 0xFF000000 || e.low>>32 != 0 {
		carry := byte(e.low >> 32)
		temp := e.cache
		for {
			e.emit(temp + carry)
			temp = 0xFF
			e.cacheSize--
			if e.cacheSize == 0 {
				break
			}
		}
		e.cache = byte(uint32(e.low) >> 24)
	}
	e.cacheSize++
	e.low = uint64(uint32(e.low) << 8)
}

// bit codes one bit with the adaptive probability *p (probability of a 0).
func (e *rcEncoder) bit(p *uint16, b int) {
	if e.cost != nil {
		q := float64(*p) / probOne
		if b != 0 {
			q = 1 - q
		}
		e.cost[e.kind] -= math.Log2(q)
	}
	bound := (e.rng >> probBits) * uint32(*p)
	if b == 0 {
		e.rng = bound
	} else {
		e.low += uint64(bound)
		e.rng -= bound
	}
	e.update(p, b, e.shift)
	for e.rng < rcTop {
		e.rng <<= 8
		e.shiftLow()
	}
}

// direct codes the low n bits of v, most significant first, at probability 1/2.
func (e *rcEncoder) direct(v uint32, n int) {
	if e.cost != nil {
		e.cost[e.kind] += float64(n)
	}
	for i := n - 1; i >= 0; i-- {
		e.rng >>= 1
		if (v>>uint(i))&1 != 0 {
			e.low += uint64(e.rng)
		}
		for e.rng < rcTop {
			e.rng <<= 8
			e.shiftLow()
		}
	}
}

// finish flushes the coder and returns the stream.
func (e *rcEncoder) finish() []byte {
	for i := 0; i < 5; i++ {
		e.shiftLow()
	}
	return e.out
}

// byteSource is where the decoder gets compressed bytes from; in the device
// player it is a small window over an io.ReaderAt, on the host a slice.
type byteSource interface {
	// next returns the next stream byte, or ok=false past the end.
	next() (b byte, ok bool)
}

// rcDecoder is the decoding half. Past the end of the stream it reads zeros
// for as many bytes as the encoder's flush may have left out; one byte more
// and it reports errStreamOverrun (sticky in err), so that a truncated
// stream can never make it loop or read without bound.
type rcDecoder struct {
	rng     uint32
	code    uint32
	src     byteSource
	overrun int
	err     error
	shift   uint8
	counts
}

func (d *rcDecoder) init(src byteSource) {
	d.src = src
	d.rng = 0xFFFFFFFF
	d.code = 0
	d.overrun = 0
	d.err = nil
	for i := 0; i < 4; i++ {
		d.code = d.code<<8 | uint32(d.nextByte())
	}
}

func (d *rcDecoder) nextByte() byte {
	b, ok := d.src.next()
	if !ok {
		d.overrun++
		if d.overrun > 4 && d.err == nil {
			d.err = errStreamOverrun
		}
		return 0
	}
	return b
}

func (d *rcDecoder) bit(p *uint16) int {
	bound := (d.rng >> probBits) * uint32(*p)
	var b int
	if d.code < bound {
		d.rng = bound
	} else {
		d.code -= bound
		d.rng -= bound
		b = 1
	}
	// counts.update, written out: this is the decoder's innermost loop.
	if i := (uintptr(unsafe.Pointer(p)) - d.base) / 2; i < uintptr(len(d.c))*2 && int(d.c[i/2]>>((i&1)*4)&15)+countStart < 1<<d.shift && d.c[i/2]>>((i&1)*4)&15 < 15 {
		s := (i & 1) * 4
		r := countRate[d.c[i/2]>>s&15]
		d.c[i/2] += 1 << s
		if b == 0 {
			*p += uint16((uint32(probOne-*p) * r) >> 16)
		} else {
			*p -= uint16((uint32(*p) * r) >> 16)
		}
	} else if b == 0 {
		*p += (probOne - *p) >> d.shift
	} else {
		*p -= *p >> d.shift
	}
	// A 15-bit probability can shrink the range by up to 2^10, so
	// normalisation may take two bytes.
	for d.rng < rcTop {
		d.rng <<= 8
		d.code = d.code<<8 | uint32(d.nextByte())
	}
	return b
}

func (d *rcDecoder) direct(n int) uint32 {
	var v uint32
	for i := 0; i < n; i++ {
		d.rng >>= 1
		var b uint32
		if d.code >= d.rng {
			d.code -= d.rng
			b = 1
		}
		v = v<<1 | b
		if d.rng < rcTop {
			d.rng <<= 8
			d.code = d.code<<8 | uint32(d.nextByte())
		}
	}
	return v
}
