package inplace

import (
	"crypto/sha256"
	"fmt"

	"github.com/fotastack/fota/delta"
)

// A full-image package is an in-place package made from no old image
// (delta.Make with an empty old image: OldSize 0, OldHash the SHA-256 of
// nothing). It is what the server sends a device whose running version it
// does not know (issue 7, "full image fallback when no base is known"): the
// new image is written over whatever the region holds. Its steps may copy
// only from blocks earlier steps wrote (the decoder allows reads of old
// bytes below OldSize alone), so no step reads its own target and every
// step is written without the scratch copy; a cut leaves "k-1 done" and
// boot decodes step k again from the staged package and the blocks already
// written. The old image is lost once the first block is erased, so from
// "staged" on only finishing the install makes the device bootable; that is
// what Boot does.
//
// Everything else is checked as for a delta: signature, device type,
// anti-rollback sequence number, erase block, region and staging sizes,
// RAM budget.

var emptyHash = sha256.Sum256(nil)

// FullImage reports whether hdr is a full-image package: one that needs no
// particular old image in the region.
func FullImage(hdr *delta.Header) bool {
	return hdr.OldSize == 0
}

// CheckBase holds the package's old image against the device's running
// image (its boot record): a delta must name exactly the running image; a
// full-image package names none and must say so consistently (the hash of
// nothing). A mismatch wraps delta.ErrOldImage.
func CheckBase(hdr *delta.Header, rec *BootRecord) error {
	if FullImage(hdr) {
		if hdr.OldHash != emptyHash {
			return fmt.Errorf("full-image package (old size 0) names an old image hash %x: %w", hdr.OldHash[:6], delta.ErrOldImage)
		}
		return nil
	}
	if hdr.OldSize != rec.ImageSize || hdr.OldHash != rec.ImageHash {
		return fmt.Errorf("package is for a %d-byte old image %x, running %d bytes %x: %w",
			hdr.OldSize, hdr.OldHash[:6], rec.ImageSize, rec.ImageHash[:6], delta.ErrOldImage)
	}
	return nil
}
