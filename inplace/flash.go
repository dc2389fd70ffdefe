package inplace

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"
)

// Errors the flash model reports; callers branch on them with errors.Is.
var (
	// ErrPowerCut is returned by every operation once the simulated power
	// was lost (see CutAfter). The flash keeps whatever state it had.
	ErrPowerCut = errors.New("flash: power cut")
	// ErrProgramOneOverZero is returned when a program operation would
	// turn a 0 bit back into 1. Real NOR cannot do that and would leave the
	// byte silently wrong; the model refuses, so that installer bugs show.
	ErrProgramOneOverZero = errors.New("flash: programming a 1 over a 0")
	// ErrWornOut is returned when a block is erased past its endurance.
	ErrWornOut = errors.New("flash: block worn out")
	// ErrOutOfRange is returned for an address outside the device.
	ErrOutOfRange = errors.New("flash: address out of range")
)

// ProgramError names the first byte a program operation could not write.
type ProgramError struct {
	Addr     int64 // absolute flash address
	Have     byte  // the byte in the cell
	Want     byte  // the byte asked for
	Sentinel error // ErrProgramOneOverZero
}

func (e *ProgramError) Error() string {
	return fmt.Sprintf("program at 0x%x: cell holds %#02x, asked for %#02x: %v", e.Addr, e.Have, e.Want, e.Sentinel)
}

func (e *ProgramError) Unwrap() error { return e.Sentinel }

// Geometry is the shape of a NOR flash device.
type Geometry struct {
	Size       int // bytes, a multiple of EraseBlock
	EraseBlock int // bytes erased by one erase operation (4 KiB sector or 64 KiB block)
	PageSize   int // most bytes one program operation writes, within one aligned page
	Endurance  int // erase cycles a block survives (0: DefaultEndurance)
}

// Defaults for a Geometry left partly zero.
const (
	DefaultEraseBlock = 4096
	DefaultPageSize   = 256
	// DefaultEndurance is the 100,000 program/erase cycles SPI NOR parts
	// such as Winbond's W25Q series guarantee per sector.
	DefaultEndurance = 100000
)

func (g Geometry) withDefaults() Geometry {
	if g.EraseBlock == 0 {
		g.EraseBlock = DefaultEraseBlock
	}
	if g.PageSize == 0 {
		g.PageSize = DefaultPageSize
	}
	if g.Endurance == 0 {
		g.Endurance = DefaultEndurance
	}
	return g
}

// maxFlashSize bounds the model so that a corrupt file header cannot make
// us allocate without limit.
const maxFlashSize = 1 << 30

func (g Geometry) validate() error {
	switch {
	case g.EraseBlock < 256 || g.EraseBlock > 1<<20 || g.EraseBlock&(g.EraseBlock-1) != 0:
		return fmt.Errorf("erase block %d: want a power of two from 256 B to 1 MiB", g.EraseBlock)
	case g.PageSize < 1 || g.PageSize > g.EraseBlock || g.PageSize&(g.PageSize-1) != 0:
		return fmt.Errorf("page size %d: want a power of two from 1 to the erase block", g.PageSize)
	case g.Size <= 0 || g.Size > maxFlashSize || g.Size%g.EraseBlock != 0:
		return fmt.Errorf("flash size %d: want a positive multiple of the erase block %d up to %d", g.Size, g.EraseBlock, maxFlashSize)
	case g.Endurance < 1:
		return fmt.Errorf("endurance %d: want at least 1", g.Endurance)
	}
	return nil
}

// Blocks is the number of erase blocks.
func (g Geometry) Blocks() int { return g.Size / g.EraseBlock }

// Timing model: typical figures of a 3 V SPI NOR of the Winbond W25Q class
// (W25Q64JV/W25Q128JV datasheets, "AC electrical characteristics", typical
// column): 4 KiB sector erase 45 ms, 32 KiB block erase 120 ms, 64 KiB block
// erase 150 ms; byte program 30 us for the first byte and 2.5 us for each
// further byte (a full 256-byte page ~0.7 ms); quad fast read ~50 MB/s.
const (
	eraseTime4K      = 45 * time.Millisecond
	eraseTime32K     = 120 * time.Millisecond
	eraseTime64K     = 150 * time.Millisecond
	programFirstByte = 30 * time.Microsecond
	programNextByte  = 2500 * time.Nanosecond
	readBytesPerSec  = 50_000_000
)

func eraseTime(block int) time.Duration {
	switch {
	case block <= 4096:
		return eraseTime4K
	case block <= 32768:
		return eraseTime32K
	case block <= 65536:
		return eraseTime64K
	}
	// Larger than any common erase unit: scale the 64 KiB figure.
	return eraseTime64K * time.Duration(block/65536)
}

func programTime(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return programFirstByte + time.Duration(n-1)*programNextByte
}

// Stats counts what the flash has done since it was created; in a file-backed
// flash they survive reboots.
type Stats struct {
	Erases    int64         // erase operations
	Programs  int64         // program (page) operations
	Reads     int64         // read calls
	ReadBytes int64         // bytes read
	SimTime   time.Duration // simulated device time spent in flash operations
}

// Ops is the number of erase and program operations: the index CutAfter counts.
func (s Stats) Ops() int64 { return s.Erases + s.Programs }

// Flash is a simulated NOR flash. It is not safe for concurrent use: like
// the real part, it has one bus.
type Flash struct {
	geo    Geometry
	data   []byte
	erases []uint32 // per-block erase counters (wear)
	stats  Stats
	seed   uint64

	cutAt   int64 // cut power after this many ops (0: never)
	torn    bool
	powered bool

	file *os.File // write-through backing file, nil for an in-memory flash
}

// NewFlash makes an erased in-memory flash. seed makes torn operations
// reproducible.
func NewFlash(g Geometry, seed uint64) (*Flash, error) {
	g = g.withDefaults()
	if err := g.validate(); err != nil {
		return nil, fmt.Errorf("new flash: %w", err)
	}
	f := &Flash{geo: g, data: make([]byte, g.Size), erases: make([]uint32, g.Blocks()), seed: seed, powered: true}
	for i := range f.data {
		f.data[i] = 0xFF
	}
	return f, nil
}

// Clone returns an independent in-memory copy of f (contents, wear, stats),
// powered on. The power-cut sweeps start every run from one clone.
func (f *Flash) Clone() *Flash {
	c := &Flash{geo: f.geo, data: append([]byte(nil), f.data...), erases: append([]uint32(nil), f.erases...),
		stats: f.stats, seed: f.seed, powered: true}
	return c
}

// Geometry reports the device's shape.
func (f *Flash) Geometry() Geometry { return f.geo }

// Stats reports the operation counters and the simulated time.
func (f *Flash) Stats() Stats { return f.stats }

// EraseCount reports how often block b was erased.
func (f *Flash) EraseCount(b int) int {
	if b < 0 || b >= len(f.erases) {
		return 0
	}
	return int(f.erases[b])
}

// CutAfter arms a power cut: the nth erase or program operation from now is
// the last one the flash performs; later ones return ErrPowerCut. With torn
// the nth operation is left half done, as when the supply drops during it:
// an erase leaves some bytes 0xFF and others old or random, a program clears
// only a random subset of the bits it was asked to clear. n <= 0 disarms.
func (f *Flash) CutAfter(n int, torn bool) {
	if n <= 0 {
		f.cutAt, f.torn = 0, false
		return
	}
	f.cutAt = f.stats.Ops() + int64(n)
	f.torn = torn
}

// PowerCut reports whether the power was cut.
func (f *Flash) PowerCut() bool { return !f.powered }

// Reboot restores power (a new power-up of the same chip): contents and wear
// stay, a pending cut is disarmed.
func (f *Flash) Reboot() {
	f.powered = true
	f.cutAt, f.torn = 0, false
}

// before is called ahead of each erase or program. It reports whether the
// operation is the one the cut interrupts (to be done torn or whole), or
// ErrPowerCut when the power is already gone.
func (f *Flash) before() (last bool, err error) {
	if !f.powered {
		return false, ErrPowerCut
	}
	if f.cutAt > 0 && f.stats.Ops()+1 >= f.cutAt {
		return true, nil
	}
	return false, nil
}

func (f *Flash) rng() *rand.Rand {
	return rand.New(rand.NewPCG(f.seed, uint64(f.stats.Ops())))
}

// ReadAt reads len(p) bytes at absolute address off. It implements io.ReaderAt.
func (f *Flash) ReadAt(p []byte, off int64) (int, error) {
	if !f.powered {
		return 0, ErrPowerCut
	}
	if off < 0 || off > int64(len(f.data)) {
		return 0, fmt.Errorf("read at 0x%x: %w", off, ErrOutOfRange)
	}
	n := copy(p, f.data[off:])
	f.stats.Reads++
	f.stats.ReadBytes += int64(n)
	f.stats.SimTime += time.Duration(n) * time.Second / readBytesPerSec
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Erase sets erase block b to 0xFF.
func (f *Flash) Erase(b int) error {
	if b < 0 || b >= len(f.erases) {
		return fmt.Errorf("erase block %d of %d: %w", b, len(f.erases), ErrOutOfRange)
	}
	last, err := f.before()
	if err != nil {
		return fmt.Errorf("erase block %d: %w", b, err)
	}
	if int(f.erases[b]) >= f.geo.Endurance {
		return fmt.Errorf("erase block %d after %d cycles: %w", b, f.erases[b], ErrWornOut)
	}
	start := b * f.geo.EraseBlock
	blk := f.data[start : start+f.geo.EraseBlock]
	if last && f.torn {
		// A cut mid-erase leaves cells anywhere between programmed and
		// erased: some bytes read 0xFF, some keep old bits, some are noise.
		r := f.rng()
		for i := range blk {
			switch r.IntN(3) {
			case 0:
				blk[i] = 0xFF
			case 1:
				blk[i] |= byte(r.Uint32())
			}
		}
	} else {
		for i := range blk {
			blk[i] = 0xFF
		}
	}
	f.erases[b]++
	f.stats.Erases++
	f.stats.SimTime += eraseTime(f.geo.EraseBlock)
	if err := f.persist(int64(start), blk, b); err != nil {
		return err
	}
	if last {
		f.powered = false
		if f.torn {
			return fmt.Errorf("erase block %d (torn): %w", b, ErrPowerCut)
		}
	}
	return nil
}

// Program writes p at absolute address off, clearing bits only. It is one
// program operation per touched page (the chip's page program command
// cannot cross a page boundary), each counted for CutAfter. Writing a 1
// where the cell holds 0 fails with a *ProgramError before anything of that
// page changes.
func (f *Flash) Program(off int64, p []byte) error {
	if off < 0 || off+int64(len(p)) > int64(len(f.data)) {
		return fmt.Errorf("program %d bytes at 0x%x: %w", len(p), off, ErrOutOfRange)
	}
	ps := int64(f.geo.PageSize)
	for len(p) > 0 {
		n := int(ps - off%ps)
		if n > len(p) {
			n = len(p)
		}
		if err := f.programPage(off, p[:n]); err != nil {
			return err
		}
		off += int64(n)
		p = p[n:]
	}
	return nil
}

func (f *Flash) programPage(off int64, p []byte) error {
	last, err := f.before()
	if err != nil {
		return fmt.Errorf("program at 0x%x: %w", off, err)
	}
	cells := f.data[off : off+int64(len(p))]
	for i, w := range p {
		if w&^cells[i] != 0 {
			return &ProgramError{Addr: off + int64(i), Have: cells[i], Want: w, Sentinel: ErrProgramOneOverZero}
		}
	}
	if last && f.torn {
		r := f.rng()
		for i, w := range p {
			clear := cells[i] &^ w // bits this program would clear
			cells[i] &^= clear & byte(r.Uint32())
		}
	} else {
		copy(cells, p)
	}
	f.stats.Programs++
	f.stats.SimTime += programTime(len(p))
	if err := f.persist(off, cells, -1); err != nil {
		return err
	}
	if last {
		f.powered = false
		if f.torn {
			return fmt.Errorf("program at 0x%x (torn): %w", off, ErrPowerCut)
		}
	}
	return nil
}
