package inplace

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// BootRecord is what the bootloader trusts: which image is in the image
// region and which key may sign updates to it.
type BootRecord struct {
	Seq        uint32   // write sequence: the valid copy with the higher one wins
	ImageSize  uint32   // bytes of the committed image
	ImageHash  [32]byte // SHA-256 of those bytes
	TrustedKey ed25519.PublicKey
	SeqNo      uint32 // anti-rollback counter of the running image (package SeqNo)
	Version    string
	DeviceType string
	// RAMBudget is the device's installer memory in bytes (0: the default,
	// DefaultRAMBudget plus one erase block). It is a property of the
	// device, kept here so that the boot that resumes an update grants the
	// same memory the install was checked against.
	RAMBudget uint32
}

// ErrNoBootRecord means neither boot record copy is valid: the device has
// no image it can trust (a bricked device, or a flash never provisioned).
var ErrNoBootRecord = errors.New("no valid boot record")

// Boot record encoding, one per boot block at its start:
//
//	0    8   magic "FOTABOOT"
//	8    4   seq
//	12   4   image size
//	16   32  image SHA-256
//	48   32  trusted Ed25519 public key
//	80   4   anti-rollback SeqNo
//	84   1+64 version (length byte, text, zero padding)
//	149  1+64 device type
//	214  4   installer RAM budget (0: default)
//	252  4   CRC-32 (IEEE) of bytes 0..252
//
// Integers little endian. The CRC catches a torn program or erase of the
// copy being written; the other copy then still stands.
const (
	bootMagic      = "FOTABOOT"
	bootRecordSize = 256
	bootStringMax  = 64
)

func (r *BootRecord) marshal(b []byte) error {
	if len(r.Version) > bootStringMax || len(r.DeviceType) > bootStringMax {
		return fmt.Errorf("boot record: version or device type longer than %d bytes", bootStringMax)
	}
	if len(r.TrustedKey) != ed25519.PublicKeySize {
		return fmt.Errorf("boot record: trusted key of %d bytes, want %d", len(r.TrustedKey), ed25519.PublicKeySize)
	}
	b = b[:bootRecordSize]
	clear(b)
	copy(b, bootMagic)
	binary.LittleEndian.PutUint32(b[8:], r.Seq)
	binary.LittleEndian.PutUint32(b[12:], r.ImageSize)
	copy(b[16:48], r.ImageHash[:])
	copy(b[48:80], r.TrustedKey)
	binary.LittleEndian.PutUint32(b[80:], r.SeqNo)
	b[84] = byte(len(r.Version))
	copy(b[85:], r.Version)
	b[149] = byte(len(r.DeviceType))
	copy(b[150:], r.DeviceType)
	binary.LittleEndian.PutUint32(b[214:], r.RAMBudget)
	binary.LittleEndian.PutUint32(b[252:], crc32.ChecksumIEEE(b[:252]))
	return nil
}

func parseBootRecord(b []byte) (*BootRecord, error) {
	if len(b) < bootRecordSize {
		return nil, fmt.Errorf("boot record: %d bytes, want %d", len(b), bootRecordSize)
	}
	if string(b[:8]) != bootMagic {
		return nil, errors.New("boot record: bad magic")
	}
	if crc32.ChecksumIEEE(b[:252]) != binary.LittleEndian.Uint32(b[252:]) {
		return nil, errors.New("boot record: CRC mismatch")
	}
	if b[84] > bootStringMax || b[149] > bootStringMax {
		return nil, errors.New("boot record: string length out of range")
	}
	r := &BootRecord{
		Seq:        binary.LittleEndian.Uint32(b[8:]),
		ImageSize:  binary.LittleEndian.Uint32(b[12:]),
		TrustedKey: ed25519.PublicKey(append([]byte(nil), b[48:80]...)),
		SeqNo:      binary.LittleEndian.Uint32(b[80:]),
		Version:    string(b[85 : 85+int(b[84])]),
		DeviceType: string(b[150 : 150+int(b[149])]),
		RAMBudget:  binary.LittleEndian.Uint32(b[214:]),
	}
	copy(r.ImageHash[:], b[16:48])
	return r, nil
}

// readBootRecord returns the valid copy with the higher seq, and the index
// (0 or 1) of the copy to overwrite next (the other one).
func readBootRecord(f *Flash, l Layout) (*BootRecord, int, error) {
	var buf [bootRecordSize]byte
	var best *BootRecord
	bestIdx := -1
	for i, blk := range l.BootBlocks {
		if _, err := f.ReadAt(buf[:], int64(blk*l.EraseBlock)); err != nil {
			return nil, 0, fmt.Errorf("read boot record %c: %w", 'A'+i, err)
		}
		r, err := parseBootRecord(buf[:])
		if err != nil {
			continue
		}
		if best == nil || r.Seq > best.Seq {
			best, bestIdx = r, i
		}
	}
	if best == nil {
		return nil, 0, ErrNoBootRecord
	}
	return best, 1 - bestIdx, nil
}

// writeBootRecord writes r (with seq one above the current) over the older
// copy: erase, then one program. Until the program completes, the other
// copy is the valid one.
func writeBootRecord(f *Flash, l Layout, r *BootRecord) error {
	cur, next, err := readBootRecord(f, l)
	switch {
	case errors.Is(err, ErrNoBootRecord):
		r.Seq, next = 1, 0
	case err != nil:
		return err
	default:
		r.Seq = cur.Seq + 1
	}
	var buf [bootRecordSize]byte
	if err := r.marshal(buf[:]); err != nil {
		return err
	}
	blk := l.BootBlocks[next]
	if err := f.Erase(blk); err != nil {
		return fmt.Errorf("write boot record %c: %w", 'A'+next, err)
	}
	if err := f.Program(int64(blk*l.EraseBlock), buf[:]); err != nil {
		return fmt.Errorf("write boot record %c: %w", 'A'+next, err)
	}
	return nil
}
