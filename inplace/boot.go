package inplace

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrImageCorrupt means the image region does not hash to what the boot
// record says: the bootloader refuses to run it.
var ErrImageCorrupt = errors.New("image region does not match the boot record's hash")

// BootResult is what a power-up ended with.
type BootResult struct {
	Version    string // version of the image that runs
	DeviceType string
	ImageSize  uint32
	ImageHash  [32]byte
	Resumed    bool    // this boot finished an interrupted update first
	Update     *Report // the resumed update's report, when Resumed
}

// Boot is what the simulated device does at power-up: if the journal shows
// an update in progress (staged, or stopped between steps), it finishes it;
// then it checks the committed image against the boot record's SHA-256 and
// reports which version runs. A failed update or a corrupt image is an
// error: the device does not run it.
func Boot(f *Flash, opts Options) (BootResult, error) {
	var res BootResult
	l, err := LayoutFor(f.Geometry())
	if err != nil {
		return res, err
	}
	var jbuf [recordSize]byte
	j, err := OpenJournal(f, l, jbuf[:])
	if err != nil {
		return res, fmt.Errorf("boot: %w", err)
	}
	switch st := j.Last().State; {
	case st.inProgress():
		rep, err := Resume(f, opts)
		if err != nil {
			return res, fmt.Errorf("boot: finish update: %w", err)
		}
		res.Resumed, res.Update = true, &rep
	case st == StateFailed:
		return res, fmt.Errorf("boot: %w", ErrUpdateFailed)
	}
	rec, _, err := readBootRecord(f, l)
	if err != nil {
		return res, fmt.Errorf("boot: %w", err)
	}
	var iobuf [ioBufSize]byte
	sum, err := hashFlash(f, l.ImageStart, int64(rec.ImageSize), iobuf[:])
	if err != nil {
		return res, fmt.Errorf("boot: hash image: %w", err)
	}
	if sum != rec.ImageHash {
		return res, fmt.Errorf("boot: %w", ErrImageCorrupt)
	}
	res.Version, res.DeviceType, res.ImageSize, res.ImageHash = rec.Version, rec.DeviceType, rec.ImageSize, rec.ImageHash
	return res, nil
}

// Image is the firmware as the device boots it: the image region's first
// ImageSize bytes (of the committed boot record).
func Image(f *Flash) ([]byte, *BootRecord, error) {
	l, err := LayoutFor(f.Geometry())
	if err != nil {
		return nil, nil, err
	}
	rec, _, err := readBootRecord(f, l)
	if err != nil {
		return nil, nil, err
	}
	if int(rec.ImageSize) > l.ImageSize {
		return nil, nil, fmt.Errorf("boot record names a %d-byte image, region holds %d", rec.ImageSize, l.ImageSize)
	}
	img := make([]byte, rec.ImageSize)
	if _, err := f.ReadAt(img, l.ImageStart); err != nil {
		return nil, nil, err
	}
	return img, rec, nil
}

// Provision is the factory step: it erases the metadata and image areas,
// writes image into the image region and a boot record naming it, its
// version, the device type and the key trusted to sign updates.
type Provision struct {
	Image      []byte
	Version    string
	DeviceType string
	TrustedKey ed25519.PublicKey
	SeqNo      uint32
	RAMBudget  uint32 // the device's installer memory (0: default)
}

// Write provisions f.
func (p Provision) Write(f *Flash) error {
	l, err := LayoutFor(f.Geometry())
	if err != nil {
		return err
	}
	if len(p.Image) > l.ImageSize {
		return fmt.Errorf("provision: image of %d bytes, image region holds %d: %w", len(p.Image), l.ImageSize, ErrDoesNotFit)
	}
	for _, b := range append(l.BootBlocks[:], l.JournalBlocks[:]...) {
		if err := f.Erase(b); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	first := l.ImageBlock(0)
	for b := 0; b < (len(p.Image)+l.EraseBlock-1)/l.EraseBlock; b++ {
		if err := f.Erase(first + b); err != nil {
			return fmt.Errorf("provision: %w", err)
		}
	}
	if err := programSkippingErased(f, l.ImageStart, p.Image); err != nil {
		return fmt.Errorf("provision: write image: %w", err)
	}
	rec := BootRecord{ImageSize: uint32(len(p.Image)), ImageHash: sha256.Sum256(p.Image), TrustedKey: p.TrustedKey,
		SeqNo: p.SeqNo, Version: p.Version, DeviceType: p.DeviceType, RAMBudget: p.RAMBudget}
	if err := writeBootRecord(f, l, &rec); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}
