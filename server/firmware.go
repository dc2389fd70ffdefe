package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/server/store"
)

// The firmware repository keeps images, the packages made from them and the
// signing key in the server's bbolt file, beside the registrations.
//
// Images live in bbolt itself rather than in files beside the database: one
// file is one backup and one unit of crash consistency (an image and its
// metadata appear together or not at all, a package never points at a half
// written file), and the images of constrained devices are small (the delta
// format bounds them to delta.MaxImageSize; MaxImageSize here is lower).
// Blobs are stored once per SHA-256, so an image re-uploaded under another
// version costs nothing; a blob is removed with the last record using it.

// Buckets of the firmware repository.
var (
	bucketFwImages   = []byte("fw_images")   // image ID -> Image JSON
	bucketFwPackages = []byte("fw_packages") // package ID -> Package JSON
	bucketFwBlobs    = []byte("fw_blobs")    // SHA-256 hex -> bytes
	bucketFwTypes    = []byte("fw_types")    // device type -> DeviceProfile JSON
)

// MaxImageSize bounds an uploaded image or opaque package.
const MaxImageSize = 64 << 20

// settingSigningKey is the store setting holding the Ed25519 signing key
// (64-byte private key), made on first start.
const settingSigningKey = "firmware-signing-key"

// Errors of the firmware repository; the HTTP API maps them to 404, 409, 400.
var (
	ErrNoImage      = errors.New("no such firmware image")
	ErrNoPackage    = errors.New("no such firmware package")
	ErrImageExists  = errors.New("firmware image already exists")
	ErrBadImage     = errors.New("bad firmware image")
	errNoBoltHandle = errors.New("firmware: the server's store is not a bbolt store")
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

// ImageID is the stable ID of the image of (deviceType, version).
func ImageID(deviceType, version string) string {
	h := sha256.Sum256([]byte(deviceType + "\x00" + version))
	return hex.EncodeToString(h[:6])
}

// Firmware is the firmware repository and package service of a Server: it
// stores images, makes signed delta packages on demand and caches them,
// serves them over CoAP Block2 at /fw/{packageID} on the DM listeners, and
// exposes all of it in the HTTP API under /api/firmware.
type Firmware struct {
	srv *Server
	db  *bolt.DB
	key ed25519.PrivateKey

	buildMu sync.Mutex // one delta.Make at a time: it is CPU and memory heavy
	builds  int        // packages made by this process (cache misses), under buildMu

	cache    *packageCache
	progress *downloadProgress
}

// NewFirmware attaches the firmware repository to s: it creates its buckets
// in the server's bbolt file, loads or makes the signing key, and adds the
// CoAP route /fw/* and the HTTP routes /api/firmware. The server's store
// must be bbolt (it has DB()).
func NewFirmware(s *Server) (*Firmware, error) {
	h, ok := s.Store().(interface{ DB() *bolt.DB })
	if !ok {
		return nil, errNoBoltHandle
	}
	f := &Firmware{srv: s, db: h.DB(), cache: newPackageCache(64 << 20), progress: newDownloadProgress()}
	err := f.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketFwImages, bucketFwPackages, bucketFwBlobs, bucketFwTypes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("firmware: create buckets: %w", err)
	}
	if f.key, err = loadOrMakeKey(s.Store()); err != nil {
		return nil, err
	}
	s.Router().Handle("GET", "fw/*", f.handleDownload)
	f.routes(s.Mux())
	return f, nil
}

// loadOrMakeKey returns the signing key stored in the settings, making and
// storing one on first start.
func loadOrMakeKey(st store.Store) (ed25519.PrivateKey, error) {
	b, err := st.Setting(settingSigningKey)
	if err == nil {
		k, perr := delta.ParsePrivateKey(b)
		if perr != nil {
			return nil, fmt.Errorf("firmware: stored signing key: %w", perr)
		}
		return k, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("firmware: read signing key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("firmware: generate signing key: %w", err)
	}
	if err := st.PutSetting(settingSigningKey, []byte(hex.EncodeToString(priv))); err != nil {
		return nil, fmt.Errorf("firmware: store signing key: %w", err)
	}
	return priv, nil
}

// PublicKey is the key devices verify packages with (provision it on them).
func (f *Firmware) PublicKey() ed25519.PublicKey { return f.key.Public().(ed25519.PublicKey) }

// Builds is how many packages this process has made (each cache miss makes
// one; a cached package is never made again).
func (f *Firmware) Builds() int {
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	return f.builds
}

// AddImage stores an image of deviceType at version. Its SeqNo is one more
// than the highest of the device type's images, so packages to newer
// uploads pass the devices' anti-rollback check. opaque stores a package for
// another vendor's client, served as is.
func (f *Firmware) AddImage(deviceType, version string, data []byte, opaque bool) (Image, error) {
	if deviceType == "" || len(deviceType) > 64 || version == "" || len(version) > 64 {
		return Image{}, fmt.Errorf("%w: device type and version must be 1 to 64 bytes", ErrBadImage)
	}
	if len(data) == 0 || len(data) > MaxImageSize {
		return Image{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrBadImage, len(data), MaxImageSize)
	}
	sum := sha256.Sum256(data)
	img := Image{
		ID: ImageID(deviceType, version), DeviceType: deviceType, Version: version,
		Size: len(data), SHA256: hex.EncodeToString(sum[:]), Opaque: opaque, Created: time.Now().UTC(),
	}
	err := f.db.Update(func(tx *bolt.Tx) error {
		ib := tx.Bucket(bucketFwImages)
		if ib.Get([]byte(img.ID)) != nil {
			return fmt.Errorf("%w: %s %s", ErrImageExists, deviceType, version)
		}
		var seq uint32
		err := ib.ForEach(func(_, v []byte) error {
			var o Image
			if json.Unmarshal(v, &o) == nil && o.DeviceType == deviceType && o.SeqNo > seq {
				seq = o.SeqNo
			}
			return nil
		})
		if err != nil {
			return err
		}
		img.SeqNo = seq + 1
		bb := tx.Bucket(bucketFwBlobs)
		if bb.Get([]byte(img.SHA256)) == nil {
			if err := bb.Put([]byte(img.SHA256), data); err != nil {
				return err
			}
		}
		return putJSON(ib, img.ID, img)
	})
	if err != nil {
		return Image{}, err
	}
	f.srv.log.Info("firmware image added", "deviceType", deviceType, "version", version, "size", len(data), "sha256", img.SHA256[:16])
	return img, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// Images lists the stored images, by device type then upload order.
func (f *Firmware) Images() ([]Image, error) {
	var out []Image
	err := f.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFwImages).ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("decode image %s: %w", k, err)
			}
			out = append(out, img)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].DeviceType != out[j].DeviceType {
			return out[i].DeviceType < out[j].DeviceType
		}
		return out[i].SeqNo < out[j].SeqNo
	})
	return out, err
}

// Image returns the image with this ID, or ErrNoImage.
func (f *Firmware) Image(id string) (Image, error) {
	var img Image
	err := f.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bucketFwImages), id, &img, ErrNoImage) })
	return img, err
}

// FindImage returns the image of deviceType at version, or ErrNoImage.
func (f *Firmware) FindImage(deviceType, version string) (Image, error) {
	return f.Image(ImageID(deviceType, version))
}

func getJSON(b *bolt.Bucket, key string, v any, notFound error) error {
	data := b.Get([]byte(key))
	if data == nil {
		return fmt.Errorf("%w: %q", notFound, key)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	return nil
}

// ImageData returns a copy of an image's bytes.
func (f *Firmware) ImageData(img Image) ([]byte, error) { return f.blob(img.SHA256) }

func (f *Firmware) blob(sum string) ([]byte, error) {
	var out []byte
	err := f.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFwBlobs).Get([]byte(sum))
		if v == nil {
			return fmt.Errorf("firmware: blob %s missing", sum)
		}
		out = append([]byte(nil), v...) // bbolt's slice is valid only inside the transaction
		return nil
	})
	return out, err
}

// DeleteImage removes an image, the packages made from or to it and the
// blobs no longer used.
func (f *Firmware) DeleteImage(id string) error {
	var dropped []string
	err := f.db.Update(func(tx *bolt.Tx) error {
		ib, pb := tx.Bucket(bucketFwImages), tx.Bucket(bucketFwPackages)
		var img Image
		if err := getJSON(ib, id, &img, ErrNoImage); err != nil {
			return err
		}
		if err := ib.Delete([]byte(id)); err != nil {
			return err
		}
		var dead []Package
		err := pb.ForEach(func(_, v []byte) error {
			var p Package
			if json.Unmarshal(v, &p) == nil && (p.FromImage == id || p.ToImage == id) {
				dead = append(dead, p)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range dead {
			if err := pb.Delete([]byte(p.ID)); err != nil {
				return err
			}
			dropped = append(dropped, p.ID)
			if err := dropBlobIfUnused(tx, p.SHA256); err != nil {
				return err
			}
		}
		return dropBlobIfUnused(tx, img.SHA256)
	})
	for _, p := range dropped {
		f.cache.drop(p)
	}
	return err
}

// dropBlobIfUnused deletes a blob no image or package refers to.
func dropBlobIfUnused(tx *bolt.Tx, sum string) error {
	used := false
	check := func(_, v []byte) error {
		var x struct {
			SHA256 string `json:"sha256"`
		}
		if json.Unmarshal(v, &x) == nil && x.SHA256 == sum {
			used = true
		}
		return nil
	}
	if err := tx.Bucket(bucketFwImages).ForEach(check); err != nil {
		return err
	}
	if err := tx.Bucket(bucketFwPackages).ForEach(check); err != nil {
		return err
	}
	if used {
		return nil
	}
	return tx.Bucket(bucketFwBlobs).Delete([]byte(sum))
}

// SetProfile stores the erase block and RAM of a device type; packages are
// made for them (defaults: delta.DefaultEraseBlock, inplace.DefaultDecoderRAM).
func (f *Firmware) SetProfile(p DeviceProfile) error {
	if p.DeviceType == "" || len(p.DeviceType) > 64 {
		return fmt.Errorf("%w: device type must be 1 to 64 bytes", ErrBadImage)
	}
	if p.EraseBlock != 0 && (p.EraseBlock < delta.MinEraseBlock || p.EraseBlock > delta.MaxEraseBlock) {
		return fmt.Errorf("%w: erase block %d outside [%d, %d]", ErrBadImage, p.EraseBlock, delta.MinEraseBlock, delta.MaxEraseBlock)
	}
	if p.RAM < 0 || p.RAM > 64<<20 {
		return fmt.Errorf("%w: ram %d", ErrBadImage, p.RAM)
	}
	return f.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketFwTypes), p.DeviceType, p) })
}

// Profile returns the stored profile of a device type, with defaults filled.
func (f *Firmware) Profile(deviceType string) DeviceProfile {
	p := DeviceProfile{DeviceType: deviceType}
	_ = f.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bucketFwTypes), deviceType, &p, ErrNoImage) })
	if p.EraseBlock == 0 {
		p.EraseBlock = delta.DefaultEraseBlock
	}
	if p.RAM == 0 {
		// What a device with the installer's default budget grants the
		// decoder (the same figure as delta.DefaultRAM).
		p.RAM = inplace.DefaultDecoderRAM
	}
	return p
}
