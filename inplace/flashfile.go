package inplace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// A flash file holds one simulated device so that a reboot is a new process
// opening the same file. It is written through on every erase and program,
// so a process killed mid-update leaves the file as the chip would be.
//
//	offset  size  field
//	0       8     magic "FOTAFLSH"
//	8       4     file format version (1)
//	12      4     erase block size
//	16      8     flash size
//	24      4     page (program) size
//	28      4     endurance (erase cycles per block)
//	32      8     seed of the torn-operation noise
//	40      40    stats: erases, programs, reads, read bytes, simulated ns
//	128     4*N   erase counter of each of the N blocks
//	D       size  contents, D = 128+4*N rounded up to 4 KiB
//
// All integers are little endian.
const (
	fileMagic      = "FOTAFLSH"
	fileVersion    = 1
	fileStatsOff   = 40
	fileCountersAt = 128
)

func fileDataOffset(blocks int) int64 {
	n := int64(fileCountersAt + 4*blocks)
	return (n + 4095) &^ 4095
}

// CreateFlash makes a new erased flash backed by the file at path
// (truncating it).
func CreateFlash(path string, g Geometry, seed uint64) (*Flash, error) {
	f, err := NewFlash(g, seed)
	if err != nil {
		return nil, err
	}
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create flash file: %w", err)
	}
	f.file = file
	if err := f.writeAll(); err != nil {
		file.Close()
		return nil, fmt.Errorf("create flash file %s: %w", path, err)
	}
	return f, nil
}

// OpenFlash powers up the flash stored in the file at path.
func OpenFlash(path string) (*Flash, error) {
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open flash file: %w", err)
	}
	f, err := readFlashFile(file)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("open flash file %s: %w", path, err)
	}
	f.file = file
	return f, nil
}

func readFlashFile(r io.ReaderAt) (*Flash, error) {
	var h [fileCountersAt]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(h[:8]) != fileMagic {
		return nil, errors.New("not a flash file (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != fileVersion {
		return nil, fmt.Errorf("flash file version %d, want %d", v, fileVersion)
	}
	size := binary.LittleEndian.Uint64(h[16:])
	if size > maxFlashSize {
		return nil, fmt.Errorf("flash size %d exceeds the model's %d", size, maxFlashSize)
	}
	g := Geometry{
		EraseBlock: int(binary.LittleEndian.Uint32(h[12:])),
		Size:       int(size),
		PageSize:   int(binary.LittleEndian.Uint32(h[24:])),
		Endurance:  int(binary.LittleEndian.Uint32(h[28:])),
	}
	if err := g.validate(); err != nil {
		return nil, err
	}
	// Probe the last byte before allocating, so that a header naming a
	// huge flash in a short file costs nothing.
	var last [1]byte
	if _, err := r.ReadAt(last[:], fileDataOffset(g.Blocks())+int64(g.Size)-1); err != nil {
		return nil, fmt.Errorf("file shorter than the %d-byte flash it declares: %w", g.Size, err)
	}
	f := &Flash{geo: g, data: make([]byte, g.Size), erases: make([]uint32, g.Blocks()),
		seed: binary.LittleEndian.Uint64(h[32:]), powered: true}
	s := h[fileStatsOff:]
	f.stats = Stats{
		Erases:    int64(binary.LittleEndian.Uint64(s[0:])),
		Programs:  int64(binary.LittleEndian.Uint64(s[8:])),
		Reads:     int64(binary.LittleEndian.Uint64(s[16:])),
		ReadBytes: int64(binary.LittleEndian.Uint64(s[24:])),
		SimTime:   time.Duration(binary.LittleEndian.Uint64(s[32:])),
	}
	cnt := make([]byte, 4*g.Blocks())
	if _, err := r.ReadAt(cnt, fileCountersAt); err != nil {
		return nil, fmt.Errorf("read erase counters: %w", err)
	}
	for i := range f.erases {
		f.erases[i] = binary.LittleEndian.Uint32(cnt[4*i:])
	}
	if _, err := r.ReadAt(f.data, fileDataOffset(g.Blocks())); err != nil {
		return nil, fmt.Errorf("read contents (%d bytes): %w", g.Size, err)
	}
	return f, nil
}

func (f *Flash) statsBytes() []byte {
	var s [40]byte
	binary.LittleEndian.PutUint64(s[0:], uint64(f.stats.Erases))
	binary.LittleEndian.PutUint64(s[8:], uint64(f.stats.Programs))
	binary.LittleEndian.PutUint64(s[16:], uint64(f.stats.Reads))
	binary.LittleEndian.PutUint64(s[24:], uint64(f.stats.ReadBytes))
	binary.LittleEndian.PutUint64(s[32:], uint64(f.stats.SimTime))
	return s[:]
}

func (f *Flash) writeAll() error {
	g := f.geo
	h := make([]byte, fileDataOffset(g.Blocks()))
	copy(h, fileMagic)
	binary.LittleEndian.PutUint32(h[8:], fileVersion)
	binary.LittleEndian.PutUint32(h[12:], uint32(g.EraseBlock))
	binary.LittleEndian.PutUint64(h[16:], uint64(g.Size))
	binary.LittleEndian.PutUint32(h[24:], uint32(g.PageSize))
	binary.LittleEndian.PutUint32(h[28:], uint32(g.Endurance))
	binary.LittleEndian.PutUint64(h[32:], f.seed)
	copy(h[fileStatsOff:], f.statsBytes())
	for i, c := range f.erases {
		binary.LittleEndian.PutUint32(h[fileCountersAt+4*i:], c)
	}
	if _, err := f.file.WriteAt(h, 0); err != nil {
		return err
	}
	_, err := f.file.WriteAt(f.data, int64(len(h)))
	return err
}

// persist writes one operation through to the backing file: the changed
// cells, the block's erase counter (block >= 0) and the counters.
func (f *Flash) persist(off int64, cells []byte, block int) error {
	if f.file == nil {
		return nil
	}
	d := fileDataOffset(len(f.erases))
	if _, err := f.file.WriteAt(cells, d+off); err != nil {
		return fmt.Errorf("flash file: %w", err)
	}
	if block >= 0 {
		var c [4]byte
		binary.LittleEndian.PutUint32(c[:], f.erases[block])
		if _, err := f.file.WriteAt(c[:], fileCountersAt+4*int64(block)); err != nil {
			return fmt.Errorf("flash file: %w", err)
		}
	}
	if _, err := f.file.WriteAt(f.statsBytes(), fileStatsOff); err != nil {
		return fmt.Errorf("flash file: %w", err)
	}
	return nil
}

// Close writes the counters and closes the backing file. It is a no-op for
// an in-memory flash. The flash must not be used afterwards.
func (f *Flash) Close() error {
	if f.file == nil {
		return nil
	}
	_, err := f.file.WriteAt(f.statsBytes(), fileStatsOff)
	if cerr := f.file.Close(); err == nil {
		err = cerr
	}
	f.file = nil
	if err != nil {
		return fmt.Errorf("close flash file: %w", err)
	}
	return nil
}
