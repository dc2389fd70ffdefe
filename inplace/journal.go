package inplace

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// State is where an update stands, as the journal records it.
type State uint8

// Journal states, in the order an update passes them.
const (
	// StateIdle: no update recorded (a fresh device, or none since
	// provisioning). The image region holds the boot record's image.
	StateIdle State = 0
	// StateStaged: the package is in the staging area, verified (signature,
	// device, old image) and hashed; the image region is still old. From
	// here on boot finishes the update.
	StateStaged State = 1
	// StateScratch: the scratch block holds the whole new content of step
	// Step (CRC ScratchCRC); its target may be partly erased or written.
	StateScratch State = 2
	// StateDone: step Step is written to its target.
	StateDone State = 3
	// StateCommitted: the new image was verified and the boot record names it.
	StateCommitted State = 4
	// StateFailed: the result did not match the package's new image hash;
	// the image region must not be booted.
	StateFailed State = 5
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateStaged:
		return "staged"
	case StateScratch:
		return "scratch"
	case StateDone:
		return "step-done"
	case StateCommitted:
		return "committed"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// inProgress reports whether boot must resume an update.
func (s State) inProgress() bool {
	return s == StateStaged || s == StateScratch || s == StateDone
}

// Record is one journal entry. Every record carries the whole state (the
// staged package's identity too), so the newest valid record alone says
// where the update stands and compaction is one record.
type Record struct {
	Seq        uint32 // global write sequence across both journal blocks
	State      State
	Step       uint32   // StateScratch, StateDone: the step
	ScratchLen uint32   // StateScratch: bytes of the step in scratch
	ScratchCRC uint32   // StateScratch: CRC-32 of those bytes
	PatchLen   uint32   // the staged package's length
	PatchHash  [32]byte // and its SHA-256
	Steps      uint32   // steps of the staged package
}

// Record encoding (64 bytes, one program operation):
//
//	0   1   magic 0xA5
//	1   1   state
//	2   2   zero
//	4   4   seq
//	8   4   step
//	12  4   scratch length
//	16  4   scratch CRC-32
//	20  4   package length
//	24  32  package SHA-256
//	56  4   steps
//	60  4   CRC-32 (IEEE) of bytes 0..60
//
// A record is programmed into a slot that is still all 0xFF. A torn program
// leaves a slot with some bits cleared: its CRC fails, it is skipped, and
// the next record goes into the slot after it (NOR cannot rewrite it
// without an erase).
const (
	journalMagic = 0xA5
	recordSize   = 64
)

func (r *Record) marshal(b []byte) {
	b = b[:recordSize]
	clear(b)
	b[0] = journalMagic
	b[1] = byte(r.State)
	binary.LittleEndian.PutUint32(b[4:], r.Seq)
	binary.LittleEndian.PutUint32(b[8:], r.Step)
	binary.LittleEndian.PutUint32(b[12:], r.ScratchLen)
	binary.LittleEndian.PutUint32(b[16:], r.ScratchCRC)
	binary.LittleEndian.PutUint32(b[20:], r.PatchLen)
	copy(b[24:56], r.PatchHash[:])
	binary.LittleEndian.PutUint32(b[56:], r.Steps)
	binary.LittleEndian.PutUint32(b[60:], crc32.ChecksumIEEE(b[:60]))
}

// parseRecord decodes a slot; ok is false for a blank, torn or foreign slot.
func parseRecord(b []byte) (Record, bool) {
	if len(b) < recordSize || b[0] != journalMagic || b[2] != 0 || b[3] != 0 {
		return Record{}, false
	}
	if crc32.ChecksumIEEE(b[:60]) != binary.LittleEndian.Uint32(b[60:]) {
		return Record{}, false
	}
	r := Record{
		State:      State(b[1]),
		Seq:        binary.LittleEndian.Uint32(b[4:]),
		Step:       binary.LittleEndian.Uint32(b[8:]),
		ScratchLen: binary.LittleEndian.Uint32(b[12:]),
		ScratchCRC: binary.LittleEndian.Uint32(b[16:]),
		PatchLen:   binary.LittleEndian.Uint32(b[20:]),
		Steps:      binary.LittleEndian.Uint32(b[56:]),
	}
	copy(r.PatchHash[:], b[24:56])
	if r.State == StateIdle || r.State > StateFailed {
		return Record{}, false
	}
	return r, true
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != 0xFF {
			return false
		}
	}
	return true
}

// Journal is the progress journal in its two flash blocks. It keeps only
// where to append next; the flash is the truth, so opening it after a power
// cut is the same as opening it at any other time.
type Journal struct {
	f      *Flash
	l      Layout
	last   Record // newest valid record (State 0 if none)
	active int    // 0 or 1: journal block holding last
	next   int    // next free slot in the active block
	buf    []byte // recordSize bytes of working memory
}

// OpenJournal scans both journal blocks for the newest valid record. buf
// is recordSize bytes of working memory (from the installer's arena).
func OpenJournal(f *Flash, l Layout, buf []byte) (*Journal, error) {
	if len(buf) < recordSize {
		return nil, fmt.Errorf("journal: working buffer of %d bytes, need %d", len(buf), recordSize)
	}
	j := &Journal{f: f, l: l, buf: buf[:recordSize]}
	slots := l.EraseBlock / recordSize
	found := false
	for i, blk := range l.JournalBlocks {
		base := int64(blk * l.EraseBlock)
		for s := 0; s < slots; s++ {
			if _, err := f.ReadAt(j.buf, base+int64(s*recordSize)); err != nil {
				return nil, fmt.Errorf("journal: read block %d slot %d: %w", blk, s, err)
			}
			r, ok := parseRecord(j.buf)
			if ok && (!found || r.Seq > j.last.Seq) {
				j.last, j.active, found = r, i, true
			}
		}
	}
	// Append after the last slot of the active block that is not blank:
	// torn slots after the newest record cannot be programmed again.
	j.next = 0
	if found {
		base := int64(l.JournalBlocks[j.active] * l.EraseBlock)
		for s := slots - 1; s >= 0; s-- {
			if _, err := f.ReadAt(j.buf, base+int64(s*recordSize)); err != nil {
				return nil, fmt.Errorf("journal: read slot %d: %w", s, err)
			}
			if !blank(j.buf) {
				j.next = s + 1
				break
			}
		}
	} else {
		// Nothing valid: start in block A after erasing it, since it may
		// hold torn leftovers.
		j.next = slots
		j.active = 1
	}
	return j, nil
}

// Last is the newest valid record; its State is StateIdle if there is none.
func (j *Journal) Last() Record { return j.last }

// Append writes r as the newest record (its Seq is set here). When the
// active block is full it erases the other block and writes r there: the
// old block keeps older records, all with lower seq, so a cut anywhere in
// this leaves either the old newest record or r.
func (j *Journal) Append(r Record) error {
	r.Seq = j.last.Seq + 1
	slots := j.l.EraseBlock / recordSize
	if j.next >= slots {
		other := 1 - j.active
		if err := j.f.Erase(j.l.JournalBlocks[other]); err != nil {
			return fmt.Errorf("journal: compact into block %d: %w", j.l.JournalBlocks[other], err)
		}
		j.active, j.next = other, 0
	}
	r.marshal(j.buf)
	addr := int64(j.l.JournalBlocks[j.active]*j.l.EraseBlock + j.next*recordSize)
	j.next++ // even if the program fails midway, the slot is spent
	if err := j.f.Program(addr, j.buf); err != nil {
		return fmt.Errorf("journal: append %s record: %w", r.State, err)
	}
	j.last = r
	return nil
}
