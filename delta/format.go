package delta

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Package format, version 4. All integers are little-endian; "uv" is an
// unsigned LEB128 varint (encoding/binary.Uvarint). The header is kept
// compact because patch bytes are what the radio pays for.
//
//	off  size  field
//	0    4     magic "FOTD"
//	4    1     format version (4; 3 had no continuation flag on a copy to
//	           the end of a step, no recent-displacement flag and no flag
//	           bit4; 2 had 64 zero-flag contexts, no second
//	           same-difference flag, fixed-rate probabilities and 34 number
//	           widths with their own top-bit models)
//	5    1     flags: bit0 in-place, bit1 descending step order, bit2 word
//	           differences, bit3 schedule (in-place only, not with bit1),
//	           bit4 difference trees by pattern (see the difference bytes),
//	           bit5 literal trees by offset parity (see litLen)
//	6    1     model: bits 0-3 literal context bits (<= 6); bits 4-7 w, the
//	           literal history is 2^(w+8) bytes (w = 0: none, w+8 <= 15)
//	7    uv    old image size
//	..   uv    new image size
//	..   32    SHA-256 of the old image
//	..   32    SHA-256 of the new image
//	..   1+n   device type (length byte, then UTF-8, n <= 64)
//	..   1+n   firmware version of the new image (length byte, then UTF-8, n <= 64)
//	..   uv    sequence number (anti-rollback; the device refuses one not above its own)
//	..   uv    erase block size (in-place only; absent in a sequential package)
//	..         schedule (flag bit3 only):
//	     uv    R, the number of runs of the block order (<= 32)
//	     R*2uv first and last block of each run: its steps write blocks first,
//	           first±1, .. last, ascending if first <= last, descending
//	           otherwise; the runs in turn write every block once
//	     uv    S, the number of stashed old blocks (<= 16)
//	     S*uv  the stashed old block indexes, ascending, each coded as its
//	           gap to the previous one less one (the first as itself)
//	..         compressed instruction stream, to the signature
//	end-64 64  Ed25519 signature over every byte before it
//
// Derived, not stored: the number of steps (ceil(new size / erase block) for
// in-place, 1 for sequential), the step order without a schedule
// (ascending or descending block index, per flag bit1), the image region
// (max(old, new) rounded up to the erase block) and the decoder's RAM
// (ArenaSize).
//
// Stash: before the first step the installer copies each stashed block of
// the old image (its bytes below the old size) aside, into S erase blocks
// of its staging area (the stash slots, in the listed order). Copies may
// read old image offset x of a stashed block at any step, at source offset
// region + x; the decoder reads it from slot i at region + i*erase block +
// x mod erase block, so that the source it is given covers the region
// followed by the S slots (Header.SourceSize). A stash costs the device
// flash, not package bytes: it breaks the cycles of blocks that read each
// other, which no write order can satisfy.
//
// The instruction stream is one adaptive range-coded stream (rangecoder.go,
// model.go) that interleaves three kinds of field, each with its own
// probability models: the control fields (copy length, displacement change,
// literal length), the difference bytes of copies, and literal bytes. One
// interleaved stream needs no section table and lets the device decode it
// front to back with a window of a few hundred bytes. Per step (in-place)
// or for the whole image (sequential) the stream holds instructions until
// the step's output is full:
//
//	toEnd    one bit (context: first instruction of the step or not): 1 is
//	         a copy of the rest of the step, copyLen = what the step still
//	         needs, no litLen and no literals; then dispDelta and the
//	         differences as below
//	copyLen  number (only when toEnd is 0; the first instruction of a step
//	         has a length tree of its own); then, if copyLen > 0:
//	cont     one bit, only for a copy to the end (toEnd 1) in a step that
//	         follows the block above (see below; context: first
//	         instruction of the step or not): 0 is "this copy continues the
//	         previous step's first copy across the block boundary", its
//	         displacement is that copy's and no dispDelta follows
//	rep      one bit (when cont is absent or 1; context: first instruction
//	         of the step or not): 1 is "a recent displacement": a 3-bit
//	         tree r (< 7) then gives the displacement, the (r+1)th of the
//	         last eight distinct copy displacements, newest first (the
//	         newest is the previous displacement, coded as dispDelta 0),
//	         and no dispDelta follows
//	dispDelta  zigzag number: displacement = previous displacement + dispDelta;
//	           the copy reads copyLen bytes at source offset out + displacement
//	           (image region offsets, then the stash: see above)
//	copyLen difference bytes: out = source + difference (mod 256); with
//	         flag bit2, a group of 4 at a word-aligned output offset inside
//	         the copy is one little-endian 32-bit difference (mod 2^32).
//	         Each is a zero flag (context: lane = offset mod 4, which of
//	         the last four differences were non-zero, how long since the
//	         last non-zero one), then if non-zero a flag "the lane's last
//	         non-zero difference" (when there is one), then a flag "the
//	         last non-zero difference of any lane" (when there is one and
//	         it differs from the lane's), then the byte (bit tree per lane
//	         and previous difference zero or not; with flag bit4, per
//	         pattern of which of the last three differences were non-zero)
//	litLen   number (only when toEnd is 0), then litLen literal bytes; with a literal history,
//	         each item of the run is a flag bit then either a byte or a
//	         match: a bit "same distance as the last match", else the
//	         distance-1 as a number, then length-4 as a number, repeating
//	         earlier literal-stream bytes (the history holds the last 2^(w+8));
//	         a byte is a bit tree per lane (offset mod 4) and top literal
//	         context bits of the previous literal byte, or with flag bit5
//	         per offset parity and top literal context bits + 1
//
// Numbers are a 6-bit bit tree over their bit length n, then the top
// min(n-1, 3) bits under the leading one (a bit tree per length, lengths of
// 24 bits and more sharing one), then the rest at probability 1/2.
//
// Probabilities are 15-bit and adapt by a shift per field kind (model.go);
// the flags' and the numbers' length trees and the difference trees
// (model.countedProbs, in that order at the start of the model) keep a
// 4-bit use count each and move by 1/(count+4) while that is faster than
// their shift (rangecoder.go, counts).
//
// An instruction with copyLen = litLen = 0 is invalid (it would let a corrupt
// stream spin without producing output).
//
// The displacement a step's first dispDelta is relative to is the last
// copy's, except when the previous step wrote the block just above this
// one (a descending run) and had a copy: then the step "follows" and it is
// the previous step's first copy's, where this block's end most likely
// continues from; the cont flag of the step's copy to the end refers to
// the same displacement. In an ascending run the step's first copy
// continues the previous step's last one with dispDelta 0.
//
// Resuming: the decoder state at a step boundary is a function of the
// stream alone, so the installer needs to journal only the index of the
// last finished step (and its block's scratch copy); InPlacePlayer.SkipTo
// re-decodes up to it without reading flash.

const (
	magic         = "FOTD"
	formatVersion = 4
	sigSize       = ed25519.SignatureSize

	flagInPlace    = 1 << 0
	flagDescending = 1 << 1
	flagWordDiffs  = 1 << 2
	flagSchedule   = 1 << 3
	flagPattern    = 1 << 4
	flagLitParity  = 1 << 5
	knownFlags     = flagInPlace | flagDescending | flagWordDiffs | flagSchedule | flagPattern | flagLitParity

	// MaxImageSize bounds old and new sizes read from a header: larger
	// claims are refused before anything is allocated.
	MaxImageSize = 64 << 20
	// MinEraseBlock and MaxEraseBlock bound the in-place block size.
	MinEraseBlock = 256
	MaxEraseBlock = 1 << 20
	maxStringLen  = 64
	// MaxRuns and MaxStash bound a schedule: runs of the block order and
	// stashed blocks (they keep the header under 512 bytes).
	MaxRuns  = 32
	MaxStash = 16
)

// Errors callers may branch on.
var (
	ErrFormat    = errors.New("delta: malformed package")
	ErrSignature = errors.New("delta: signature does not verify")
	ErrOldImage  = errors.New("delta: package is for another old image")
	ErrNewImage  = errors.New("delta: result does not match the new image hash")
)

// Header is the parsed, verified package header.
type Header struct {
	FormatVersion    uint8
	InPlace          bool
	OldSize, NewSize uint32
	OldHash, NewHash [32]byte
	DeviceType       string
	Version          string // firmware version of the new image
	SeqNo            uint32 // anti-rollback counter
	EraseBlock       uint32 // in-place block size (0 for a sequential package)
	RAMBudget        uint32 // bytes the device needs to apply (arena size, ArenaSize)
	Steps            int    // number of in-place steps (blocks written); 1 for sequential
	// Descending is the step order: blocks are written from the last to the
	// first when true, from the first to the last otherwise. A package
	// with a schedule (Order) has neither.
	Descending bool
	// Order is the block write order of an in-place package with a
	// schedule (flag bit3): runs of consecutive blocks that together write
	// every block once. Nil without a schedule.
	Order []BlockRun
	// Stash is the old image's blocks (ascending) the installer copies
	// into its staging area before the first step; any step may read them
	// (source offset Region()+old offset). Only with a schedule.
	Stash []uint32
	// WordDiffs: the differences of each word-aligned group of four copied
	// bytes are the little-endian bytes of one 32-bit difference, so that a
	// pointer moved by a constant has the same difference bytes whatever
	// the carries (flag bit2).
	WordDiffs bool
	// DiffPattern: a difference byte coded in full uses the bit tree of
	// which of the last three differences were non-zero, instead of the
	// tree of its lane and whether the previous difference was non-zero
	// (flag bit4).
	DiffPattern bool
	// LitParity: the literal trees are chosen by the output offset's
	// parity and the previous literal's top LitCtxBits+1 bits, instead of
	// the offset mod 4 and its top LitCtxBits bits (flag bit5; as many
	// trees).
	LitParity bool
	// LitCtxBits is the literal model's context size (model parameter).
	LitCtxBits int
	// LitWindow is the literal history the decoder keeps for matches
	// within the literal stream, in bytes (0: none).
	LitWindow int
	// HeaderSize is the byte offset of the instruction stream in the
	// package; StreamSize its length (the signature follows it).
	HeaderSize, StreamSize int

	// Generator-side caches of the schedule (never read by the player,
	// which walks Order and Stash): the step of each block, and whether
	// each old block is stashed.
	rank     []int32
	stashSet []bool
}

// BlockRun is one run of a schedule's block order: blocks First to Last,
// one per step, ascending when First <= Last, descending otherwise.
type BlockRun struct{ First, Last uint32 }

// Len is the number of blocks (steps) of the run.
func (r BlockRun) Len() int {
	if r.First <= r.Last {
		return int(r.Last-r.First) + 1
	}
	return int(r.First-r.Last) + 1
}

// SourceSize is the extent of the source a step's copies read: the image
// region followed by the stash slots (in-place); the old image
// (sequential).
func (h *Header) SourceSize() int64 {
	if !h.InPlace {
		return int64(h.OldSize)
	}
	return int64(h.Region()) + int64(len(h.Stash))*int64(h.EraseBlock)
}

// Region is the size of the flash region an in-place package is applied in:
// max(old, new) rounded up to the erase block. For a sequential package it
// is the old size (the region copies read from).
func (h *Header) Region() uint32 {
	if !h.InPlace {
		return h.OldSize
	}
	r := max(h.OldSize, h.NewSize)
	b := h.EraseBlock
	return (r + b - 1) / b * b
}

// Parse reads and checks the structure of a package (magic, version, field
// bounds, sizes); it does not check the signature (Verify does).
func Parse(patch []byte) (*Header, error) {
	if len(patch) < 7+sigSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than any package", ErrFormat, len(patch))
	}
	if string(patch[:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrFormat, patch[:4])
	}
	h := &Header{FormatVersion: patch[4]}
	if h.FormatVersion != formatVersion {
		return nil, fmt.Errorf("%w: format version %d, this decoder reads %d", ErrFormat, h.FormatVersion, formatVersion)
	}
	flags := patch[5]
	if flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrFormat, flags)
	}
	h.InPlace = flags&flagInPlace != 0
	h.Descending = flags&flagDescending != 0
	h.WordDiffs = flags&flagWordDiffs != 0
	h.DiffPattern = flags&flagPattern != 0
	h.LitParity = flags&flagLitParity != 0
	h.LitCtxBits = int(patch[6] & 15)
	if h.LitCtxBits > maxLitCtxBits {
		return nil, fmt.Errorf("%w: literal context bits %d > %d", ErrFormat, h.LitCtxBits, maxLitCtxBits)
	}
	if wl := int(patch[6] >> 4); wl != 0 {
		if wl+8 > maxLitWindowLog {
			return nil, fmt.Errorf("%w: literal window 2^%d > 2^%d", ErrFormat, wl+8, maxLitWindowLog)
		}
		h.LitWindow = 1 << (wl + 8)
	}
	body := patch[:len(patch)-sigSize]
	off := 7
	uv := func(name string, limit uint64) (uint64, error) {
		v, n := binary.Uvarint(body[off:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: %s at byte %d: bad varint", ErrFormat, name, off)
		}
		if v > limit {
			return 0, fmt.Errorf("%w: %s %d exceeds limit %d", ErrFormat, name, v, limit)
		}
		off += n
		return v, nil
	}
	str := func(name string) (string, error) {
		if off >= len(body) {
			return "", fmt.Errorf("%w: %s at byte %d: truncated", ErrFormat, name, off)
		}
		n := int(body[off])
		if n > maxStringLen {
			return "", fmt.Errorf("%w: %s length %d > %d", ErrFormat, name, n, maxStringLen)
		}
		if off+1+n > len(body) {
			return "", fmt.Errorf("%w: %s at byte %d: truncated", ErrFormat, name, off)
		}
		s := string(body[off+1 : off+1+n])
		off += 1 + n
		return s, nil
	}
	v, err := uv("old size", MaxImageSize)
	if err != nil {
		return nil, err
	}
	h.OldSize = uint32(v)
	if v, err = uv("new size", MaxImageSize); err != nil {
		return nil, err
	}
	h.NewSize = uint32(v)
	if off+64 > len(body) {
		return nil, fmt.Errorf("%w: hashes at byte %d: truncated", ErrFormat, off)
	}
	copy(h.OldHash[:], body[off:])
	copy(h.NewHash[:], body[off+32:])
	off += 64
	if h.DeviceType, err = str("device type"); err != nil {
		return nil, err
	}
	if h.Version, err = str("version"); err != nil {
		return nil, err
	}
	if v, err = uv("sequence number", 1<<32-1); err != nil {
		return nil, err
	}
	h.SeqNo = uint32(v)
	h.Steps = 1
	if h.NewSize == 0 {
		h.Steps = 0
	}
	if h.InPlace {
		if v, err = uv("erase block", MaxEraseBlock); err != nil {
			return nil, err
		}
		if v < MinEraseBlock {
			return nil, fmt.Errorf("%w: erase block %d < %d", ErrFormat, v, MinEraseBlock)
		}
		h.EraseBlock = uint32(v)
		h.Steps = int((uint64(h.NewSize) + v - 1) / v)
		if flags&flagSchedule != 0 {
			if err := parseSchedule(h, uv); err != nil {
				return nil, err
			}
		}
	} else if h.Descending || flags&flagSchedule != 0 {
		return nil, fmt.Errorf("%w: step order flag on a sequential package", ErrFormat)
	}
	h.HeaderSize = off
	h.StreamSize = len(body) - off
	h.RAMBudget = uint32(ArenaSize(h))
	return h, nil
}

// parseSchedule reads and checks the block order and the stash: the runs
// must write every block exactly once, the stashed blocks must be old
// image blocks, ascending.
func parseSchedule(h *Header, uv func(string, uint64) (uint64, error)) error {
	if h.Descending {
		return fmt.Errorf("%w: descending order flag with a schedule", ErrFormat)
	}
	r, err := uv("schedule runs", MaxRuns)
	if err != nil {
		return err
	}
	last := uint64(max(h.Steps-1, 0))
	total := 0
	h.Order = make([]BlockRun, r)
	for i := range h.Order {
		a, err := uv("run first block", last)
		if err != nil {
			return err
		}
		b, err := uv("run last block", last)
		if err != nil {
			return err
		}
		run := BlockRun{uint32(a), uint32(b)}
		lo, hi := min(run.First, run.Last), max(run.First, run.Last)
		for _, o := range h.Order[:i] {
			if lo <= max(o.First, o.Last) && min(o.First, o.Last) <= hi {
				return fmt.Errorf("%w: schedule runs %d-%d and %d-%d overlap", ErrFormat, o.First, o.Last, run.First, run.Last)
			}
		}
		h.Order[i] = run
		total += run.Len()
	}
	if total != h.Steps {
		return fmt.Errorf("%w: schedule writes %d blocks, the image has %d", ErrFormat, total, h.Steps)
	}
	s, err := uv("stashed blocks", MaxStash)
	if err != nil {
		return err
	}
	oldBlocks := (uint64(h.OldSize) + uint64(h.EraseBlock) - 1) / uint64(h.EraseBlock)
	next := uint64(0)
	for i := uint64(0); i < s; i++ {
		if next >= oldBlocks {
			return fmt.Errorf("%w: stashed block %d of an old image of %d blocks", ErrFormat, next, oldBlocks)
		}
		g, err := uv("stashed block", oldBlocks-1-next)
		if err != nil {
			return err
		}
		h.Stash = append(h.Stash, uint32(next+g))
		next += g + 1
	}
	return nil
}

// Verify parses the package and checks its Ed25519 signature with pub.
func Verify(patch []byte, pub ed25519.PublicKey) (*Header, error) {
	h, err := Parse(patch)
	if err != nil {
		return nil, err
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("delta: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	body := patch[:len(patch)-sigSize]
	if !ed25519.Verify(pub, body, patch[len(patch)-sigSize:]) {
		return nil, ErrSignature
	}
	return h, nil
}

// marshalHeader encodes everything up to the instruction stream.
func marshalHeader(h *Header) []byte {
	b := make([]byte, 0, 128)
	b = append(b, magic...)
	b = append(b, formatVersion)
	var flags byte
	if h.InPlace {
		flags |= flagInPlace
	}
	if h.Descending {
		flags |= flagDescending
	}
	if h.WordDiffs {
		flags |= flagWordDiffs
	}
	if h.Order != nil {
		flags |= flagSchedule
	}
	if h.DiffPattern {
		flags |= flagPattern
	}
	if h.LitParity {
		flags |= flagLitParity
	}
	model := byte(h.LitCtxBits)
	if h.LitWindow > 0 {
		model |= byte(bits.Len(uint(h.LitWindow))-1-8) << 4
	}
	b = append(b, flags, model)
	b = binary.AppendUvarint(b, uint64(h.OldSize))
	b = binary.AppendUvarint(b, uint64(h.NewSize))
	b = append(b, h.OldHash[:]...)
	b = append(b, h.NewHash[:]...)
	b = append(b, byte(len(h.DeviceType)))
	b = append(b, h.DeviceType...)
	b = append(b, byte(len(h.Version)))
	b = append(b, h.Version...)
	b = binary.AppendUvarint(b, uint64(h.SeqNo))
	if h.InPlace {
		b = binary.AppendUvarint(b, uint64(h.EraseBlock))
	}
	if h.Order != nil {
		b = binary.AppendUvarint(b, uint64(len(h.Order)))
		for _, r := range h.Order {
			b = binary.AppendUvarint(b, uint64(r.First))
			b = binary.AppendUvarint(b, uint64(r.Last))
		}
		b = binary.AppendUvarint(b, uint64(len(h.Stash)))
		next := uint32(0)
		for _, x := range h.Stash {
			b = binary.AppendUvarint(b, uint64(x-next))
			next = x + 1
		}
	}
	return b
}
