package firmware

import (
	"fmt"

	"github.com/fotastack/fota/inplace"
)

// staging writes a package into the flash's staging area as it arrives
// (inplace.Layout: the region between the image and the scratch block).
// Writes are sequential from offset 0; an erase block is erased when the
// first byte at its start is written, so a resume at an offset inside a
// block keeps what that block already holds, and re-programming bytes
// already there with the same values is a no-op for NOR flash (bits are
// only cleared).
type staging struct {
	f *inplace.Flash
	l inplace.Layout
}

func newStaging(f *inplace.Flash) (*staging, error) {
	l, err := inplace.LayoutFor(f.Geometry())
	if err != nil {
		return nil, fmt.Errorf("firmware: staging: %w", err)
	}
	return &staging{f: f, l: l}, nil
}

// size is the largest package the device can take.
func (s *staging) size() int64 { return int64(s.l.StagingSize) }

// write puts p at package offset off.
func (s *staging) write(off int64, p []byte) error {
	if off < 0 || off+int64(len(p)) > s.size() {
		return fmt.Errorf("staging: %d bytes at %d do not fit %d bytes: %w", len(p), off, s.size(), errTooBig)
	}
	eb := int64(s.l.EraseBlock)
	base := s.l.StagingStart
	// Erase every block whose first byte lies in [off, off+len(p)).
	for b := (off + eb - 1) / eb * eb; b < off+int64(len(p)); b += eb {
		if err := s.f.Erase(int((base + b) / eb)); err != nil {
			return fmt.Errorf("staging: erase: %w", err)
		}
	}
	if err := s.f.Program(base+off, p); err != nil {
		return fmt.Errorf("staging: program %d bytes at %d: %w", len(p), off, err)
	}
	return nil
}

// read returns the first n staged bytes.
func (s *staging) read(n int64) ([]byte, error) {
	if n < 0 || n > s.size() {
		return nil, fmt.Errorf("staging: read %d bytes of %d: %w", n, s.size(), errTooBig)
	}
	b := make([]byte, n)
	if _, err := s.f.ReadAt(b, s.l.StagingStart); err != nil {
		return nil, fmt.Errorf("staging: read: %w", err)
	}
	return b, nil
}
