package store

import (
	"encoding/hex"
	"io"
	"time"
)

// Image is one firmware image of a device type, or an opaque package for
// another vendor's update client (Opaque: served as is, never diffed).
type Image struct {
	ID         string    `json:"id"`
	DeviceType string    `json:"deviceType"`
	Version    string    `json:"version"`
	Size       int       `json:"size"`
	SHA256     string    `json:"sha256"`
	SeqNo      uint32    `json:"seqNo"` // anti-rollback counter of the packages made for it
	Opaque     bool      `json:"opaque,omitempty"`
	Created    time.Time `json:"created"`
}

// DeviceProfile is what the package service must know of a device type to
// make an in-place package the device can apply.
type DeviceProfile struct {
	DeviceType string `json:"deviceType"`
	EraseBlock int    `json:"eraseBlock"` // bytes
	RAM        int    `json:"ram"`        // bytes the decoder may use
}

// Package kinds.
const (
	PackageDelta  = "delta"  // in-place delta from one image to another
	PackageFull   = "full"   // the whole new image as a signed package (no base known)
	PackageOpaque = "opaque" // another vendor's package, served as is
)

// Package is a downloadable package: what a device fetches at /fw/{ID}.
type Package struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	DeviceType  string    `json:"deviceType"`
	FromVersion string    `json:"fromVersion,omitempty"`
	ToVersion   string    `json:"toVersion"`
	FromImage   string    `json:"fromImage,omitempty"`
	ToImage     string    `json:"toImage"`
	Size        int       `json:"size"`
	SHA256      string    `json:"sha256"`
	Created     time.Time `json:"created"`
}

// ETag is the CoAP ETag of the package (RFC 7252 5.10.6): the first 8
// bytes of its SHA-256, so a changed package has another tag and a device
// resuming a download notices (LwM2M Core E.6 pull with resume).
func (p Package) ETag() []byte {
	b, _ := hex.DecodeString(p.SHA256)
	if len(b) < 8 {
		return b
	}
	return b[:8]
}

// FirmwareStore keeps the firmware repository: images, the packages made
// from them, the device profiles packages are made for, and the bytes of
// images and packages as blobs.
type FirmwareStore interface {
	BlobStore

	// AddImage stores img, whose bytes must already be a blob (PutBlob,
	// img.SHA256). An image with img.ID already stored is refused with
	// ErrExists. When img.SeqNo is 0 the store gives it one more than the
	// highest SeqNo among the images of img.DeviceType, in the same atomic
	// step, so that two uploads at once never share a number. It returns
	// the image as stored.
	AddImage(img Image) (Image, error)
	// Image returns the image with this ID, or ErrNotFound.
	Image(id string) (Image, error)
	// Images returns all images, in no set order.
	Images() ([]Image, error)
	// DeleteImage removes an image, the packages made from or to it, and
	// the blobs no image or package uses any more, in one atomic step. It
	// returns the IDs of the packages removed, or ErrNotFound.
	DeleteImage(id string) (packages []string, err error)

	// PutPackage stores p unless a package with p.ID is stored already; it
	// returns the package as stored (the first of two concurrent makers
	// wins). p's bytes must already be a blob (PutBlob, p.SHA256).
	PutPackage(p Package) (Package, error)
	// Package returns the package with this ID, or ErrNotFound.
	Package(id string) (Package, error)
	// Packages returns all packages, in no set order.
	Packages() ([]Package, error)

	// PutProfile stores the profile of p.DeviceType, replacing any.
	PutProfile(p DeviceProfile) error
	// Profile returns the stored profile of a device type, or ErrNotFound.
	Profile(deviceType string) (DeviceProfile, error)
}

// BlobStore keeps large byte strings by their SHA-256, streamed in and
// read by range, never held whole: a 4 MiB image served to 10,000 devices
// is read block by block from one stored copy.
type BlobStore interface {
	// PutBlob stores what r yields, up to limit bytes (more is an error and
	// stores nothing), and returns its SHA-256 in hex and its size. Bytes
	// already stored are kept once. Until PutBlob returns nil nothing of the
	// blob is visible; a blob that no image or package refers to may be
	// removed by the store (DeleteImage does).
	PutBlob(r io.Reader, limit int64) (sum string, size int64, err error)
	// OpenBlob returns a reader of the blob with this SHA-256, or
	// ErrNotFound. Each ReadAt reads the stored bytes afresh; the reader
	// holds no lock and no copy.
	OpenBlob(sum string) (Blob, error)
}

// Blob is a stored byte string read by range.
type Blob interface {
	io.ReaderAt
	// Size is the blob's length in bytes.
	Size() int64
}
