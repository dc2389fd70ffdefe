// Package firmware is the firmware repository and package service: images
// of each device type, the signed in-place delta (or full) packages made
// from them on demand for the device type's flash and RAM, the signing key,
// and the download of packages over CoAP Block2 at /fw/{packageID} on the
// device management listeners, with each device's progress.
//
// Images and packages are kept through the store interfaces (FirmwareStore:
// records, and blobs streamed in and read by range), so a 4 MiB image served
// to 10,000 devices is read block by block from one stored copy.
package firmware

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/seal"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/store"
)

// Store is what the repository keeps: its records and blobs, and the
// signing key among the settings.
type Store interface {
	store.FirmwareStore
	store.SettingStore
}

// MaxImageSize bounds an uploaded image or opaque package.
const MaxImageSize = 64 << 20

// settingSigningKey is the store setting holding the Ed25519 signing key
// (64-byte private key), made on first start.
const settingSigningKey = "firmware-signing-key"

// Errors of the firmware repository; the HTTP API maps them to 404, 409, 400.
var (
	ErrNoImage     = errors.New("no such firmware image")
	ErrNoPackage   = errors.New("no such firmware package")
	ErrImageExists = errors.New("firmware image already exists")
	ErrBadImage    = errors.New("bad firmware image")
)

// Image is one firmware image of a device type, or an opaque package for
// another vendor's update client (Opaque: served as is, never diffed).
type Image = store.Image

// DeviceProfile is what the package service must know of a device type to
// make an in-place package the device can apply.
type DeviceProfile = store.DeviceProfile

// ImageID is the stable ID of the image of (deviceType, version).
func ImageID(deviceType, version string) string {
	h := sha256.Sum256([]byte(deviceType + "\x00" + version))
	return hex.EncodeToString(h[:6])
}

// Repository is the firmware repository and package service of a server:
// it stores images, makes signed delta packages on demand, and serves them
// over CoAP Block2 at /fw/{packageID} on the DM listeners.
type Repository struct {
	dm *dm.Server
	st Store
	// domains, when set (SetDomains), keeps downloads within a domain.
	domains *domainCheck
	// key signs the packages made here: the stored key, or an HSM's
	// (UseSigner). Set before the repository serves.
	key crypto.Signer

	buildMu sync.Mutex // one delta.Make at a time: it is CPU and memory heavy
	builds  int        // packages made by this process (cache misses), under buildMu

	cache    *packageCache
	verified sync.Map // package ID -> true once its blob matched its hash
	progress *downloadProgress

	// Counted for /metrics; atomics because go-coap reads blocks from
	// many connection goroutines at once.
	blocksServed, bytesServed atomic.Int64
}

// Block2Stats reports the firmware blocks and bytes served to devices
// since the start (each read of a package body is one Block2 block).
func (f *Repository) Block2Stats() (blocks, bytes int64) {
	return f.blocksServed.Load(), f.bytesServed.Load()
}

// New attaches the firmware repository to the device management server
// srv: it loads or makes the signing key and adds the CoAP route /fw/*.
func New(srv *dm.Server, st Store) (*Repository, error) {
	f := &Repository{dm: srv, st: st, cache: newPackageCache(64 << 20), progress: newDownloadProgress()}
	var err error
	if f.key, err = loadOrMakeKey(st); err != nil {
		return nil, err
	}
	srv.Router().Handle("GET", "fw/*", f.handleDownload)
	return f, nil
}

// SigningKey is the key packages are signed with; the application
// repository signs with it too, so devices trust one key.
func (f *Repository) SigningKey() crypto.Signer { return f.key }

// loadOrMakeKey returns the signing key stored in the settings, making and
// storing one on first start.
func loadOrMakeKey(st store.SettingStore) (ed25519.PrivateKey, error) {
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
func (f *Repository) PublicKey() ed25519.PublicKey { return f.key.Public().(ed25519.PublicKey) }

// UseSigner makes s, an Ed25519 key in an HSM (delta/signer), sign the
// packages this repository makes, instead of the key in the store. Call it
// before the repository serves. Devices provisioned with the stored key
// take s's packages only after a package signed by the stored key
// announces s (fota delta make --announce-key): a package's ID includes
// the public key, so packages signed by the old key are never served as
// the new key's.
func (f *Repository) UseSigner(s crypto.Signer) error {
	if _, ok := s.Public().(ed25519.PublicKey); !ok {
		return fmt.Errorf("firmware: signing key is %T, want Ed25519", s.Public())
	}
	f.key = s
	return nil
}

// Builds is how many packages this process has made (each cache miss makes
// one; a cached package is never made again).
func (f *Repository) Builds() int {
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	return f.builds
}

// ImageSpec names an image being uploaded.
type ImageSpec struct {
	DeviceType, Version string
	// Opaque is a package for another vendor's client, served as is.
	Opaque bool
	// SeqNo is the rollback counter of the image's packages; 0 derives it
	// from Version, which must then be semantic (Version.Code).
	SeqNo uint32
}

// AddImage stores an image of deviceType at version (see Upload).
func (f *Repository) AddImage(deviceType, version string, data []byte, opaque bool) (Image, error) {
	return f.Upload(ImageSpec{DeviceType: deviceType, Version: version, Opaque: opaque}, bytes.NewReader(data))
}

// Upload stores the image r yields, streamed into the store, as the image
// of spec.DeviceType at spec.Version. Its rollback counter (SeqNo) follows
// the version order, so whatever the order of uploads a package to a newer
// version passes the devices' anti-rollback check and one to an older
// version does not (a downgrade needs a campaign that allows it, which
// raises the generation: PackageFor).
//
// A sealed package (delta/seal: made with fota delta make --encrypt-to or
// --announce-key) is stored and served as it came, like an opaque one: its
// payload is encrypted end to end to the devices, so the repository holds
// and sends only ciphertext and never makes a delta from it.
func (f *Repository) Upload(spec ImageSpec, r io.Reader) (Image, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(4)
	sealed := seal.IsSealed(head)
	if sealed {
		spec.Opaque = true
	}
	r = br
	deviceType, version := spec.DeviceType, spec.Version
	if deviceType == "" || len(deviceType) > 64 || version == "" || len(version) > 64 {
		return Image{}, fmt.Errorf("%w: device type and version must be 1 to 64 bytes", ErrBadImage)
	}
	seq := spec.SeqNo
	if seq >= generationUnit {
		return Image{}, fmt.Errorf("%w: --seq %d is over %d", ErrBadImage, seq, generationUnit-1)
	}
	if seq == 0 {
		v, err := ParseVersion(version)
		switch {
		case err == nil:
			seq = v.Code()
		case !spec.Opaque:
			return Image{}, fmt.Errorf("%w: %v; a version that is not semantic needs its rollback counter (--seq N, the API's seq=N)", ErrBadImage, err)
		}
	}
	id := ImageID(deviceType, version)
	if _, err := f.st.Image(id); err == nil {
		return Image{}, fmt.Errorf("%w: %s %s", ErrImageExists, deviceType, version)
	}
	if seq != 0 && !spec.Opaque {
		imgs, err := f.st.Images()
		if err != nil {
			return Image{}, err
		}
		for _, o := range imgs {
			if o.DeviceType == deviceType && o.SeqNo == seq && !o.Opaque {
				return Image{}, fmt.Errorf("%w: rollback counter %d is already %s %s's; give another --seq", ErrBadImage, seq, deviceType, o.Version)
			}
		}
	}
	sum, size, err := f.st.PutBlob(r, MaxImageSize)
	if err != nil {
		return Image{}, fmt.Errorf("%w: %v (limit %d bytes)", ErrBadImage, err, MaxImageSize)
	}
	if size == 0 {
		return Image{}, fmt.Errorf("%w: 0 bytes", ErrBadImage)
	}
	if sealed {
		if err := f.checkSealed(sum); err != nil {
			return Image{}, err
		}
	}
	img, err := f.st.AddImage(Image{
		ID: id, DeviceType: deviceType, Version: version, SeqNo: seq,
		Size: int(size), SHA256: sum, Opaque: spec.Opaque, Created: time.Now().UTC(),
	})
	if errors.Is(err, store.ErrExists) {
		return Image{}, fmt.Errorf("%w: %s %s", ErrImageExists, deviceType, version)
	}
	if err != nil {
		return Image{}, fmt.Errorf("store image %s %s: %w", deviceType, version, err)
	}
	f.dm.Logger().Info("firmware image added", "deviceType", deviceType, "version", version, "seq", img.SeqNo, "size", size, "sha256", sum[:16])
	return img, nil
}

// generationUnit is the first rollback counter above every version's: the
// counter of a package is its image's SeqNo plus generation x generationUnit.
const generationUnit = 1 << 28

// maxGeneration bounds the downgrades of one device type (the counter is
// 32 bits).
const maxGeneration = 15

func generationKey(deviceType string) string { return "firmware-generation/" + deviceType }

// Generation is how many downgrades have been allowed for deviceType: the
// rollback counter of its packages is raised by as many generationUnits.
func (f *Repository) Generation(deviceType string) (uint32, error) {
	b, err := f.st.Setting(generationKey(deviceType))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read firmware generation of %s: %w", deviceType, err)
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("stored firmware generation of %s: %w", deviceType, err)
	}
	return uint32(n), nil
}

// AllowDowngrade raises the generation of deviceType, so that a package to
// an older version carries a counter above every package made before (the
// devices accept it), and every package made after, to any version, one
// above it again. Packages are remade for the new counter. An operator's
// explicit downgrade is the only way the generation moves.
func (f *Repository) AllowDowngrade(deviceType string) (uint32, error) {
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	g, err := f.Generation(deviceType)
	if err != nil {
		return 0, err
	}
	if g >= maxGeneration {
		return 0, fmt.Errorf("%w: %s has been downgraded %d times, the most the rollback counter allows; upload the older code under a new, higher version instead", ErrBadImage, deviceType, g)
	}
	g++
	if err := f.st.PutSetting(generationKey(deviceType), []byte(strconv.FormatUint(uint64(g), 10))); err != nil {
		return 0, fmt.Errorf("store firmware generation of %s: %w", deviceType, err)
	}
	f.dm.Logger().Info("firmware downgrade allowed: rollback counters raised", "deviceType", deviceType, "generation", g)
	return g, nil
}

// Images lists the stored images, by device type then upload order.
func (f *Repository) Images() ([]Image, error) {
	out, err := f.st.Images()
	sort.Slice(out, func(i, j int) bool {
		if out[i].DeviceType != out[j].DeviceType {
			return out[i].DeviceType < out[j].DeviceType
		}
		return out[i].SeqNo < out[j].SeqNo
	})
	return out, err
}

// Image returns the image with this ID, or ErrNoImage.
func (f *Repository) Image(id string) (Image, error) {
	img, err := f.st.Image(id)
	if errors.Is(err, store.ErrNotFound) {
		return Image{}, fmt.Errorf("%w: %q", ErrNoImage, id)
	}
	return img, err
}

// FindImage returns the image of deviceType at version, or ErrNoImage.
func (f *Repository) FindImage(deviceType, version string) (Image, error) {
	return f.Image(ImageID(deviceType, version))
}

// ImageData returns a copy of an image's bytes.
func (f *Repository) ImageData(img Image) ([]byte, error) { return f.readBlob(img.SHA256) }

// readBlob reads a whole blob (to make a package of it, or to push it).
func (f *Repository) readBlob(sum string) ([]byte, error) {
	b, err := f.st.OpenBlob(sum)
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	out := make([]byte, b.Size())
	if _, err := b.ReadAt(out, 0); err != nil && !(errors.Is(err, io.EOF) && b.Size() == 0) {
		return nil, fmt.Errorf("firmware: read blob %s: %w", sum, err)
	}
	return out, nil
}

// DeleteImage removes an image, the packages made from or to it and the
// blobs no longer used.
func (f *Repository) DeleteImage(id string) error {
	dropped, err := f.st.DeleteImage(id)
	for _, p := range dropped {
		f.cache.drop(p)
		f.verified.Delete(p)
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrNoImage, id)
	}
	return err
}

// SetProfile stores the erase block and RAM of a device type; packages are
// made for them (defaults: delta.DefaultEraseBlock, delta.DefaultRAM).
func (f *Repository) SetProfile(p DeviceProfile) error {
	if p.DeviceType == "" || len(p.DeviceType) > 64 {
		return fmt.Errorf("%w: device type must be 1 to 64 bytes", ErrBadImage)
	}
	if p.EraseBlock != 0 && (p.EraseBlock < delta.MinEraseBlock || p.EraseBlock > delta.MaxEraseBlock) {
		return fmt.Errorf("%w: erase block %d outside [%d, %d]", ErrBadImage, p.EraseBlock, delta.MinEraseBlock, delta.MaxEraseBlock)
	}
	if p.RAM < 0 || p.RAM > 64<<20 {
		return fmt.Errorf("%w: ram %d", ErrBadImage, p.RAM)
	}
	return f.st.PutProfile(p)
}

// Profile returns the stored profile of a device type, with defaults filled.
func (f *Repository) Profile(deviceType string) DeviceProfile {
	p, err := f.st.Profile(deviceType)
	if err != nil {
		p = DeviceProfile{DeviceType: deviceType}
	}
	if p.EraseBlock == 0 {
		p.EraseBlock = delta.DefaultEraseBlock
	}
	if p.RAM == 0 {
		// What a device with the installer's default budget grants the
		// decoder: a property of the package format, so delta says it.
		p.RAM = delta.DefaultRAM
	}
	return p
}

// OlderThanSome reports whether the repository holds a newer version of
// target's device type than target (by semantic version, else by rollback
// counter).
func (f *Repository) OlderThanSome(target Image) bool {
	imgs, err := f.st.Images()
	if err != nil {
		return true // unknown: let the caller check the devices
	}
	for _, o := range imgs {
		if o.DeviceType != target.DeviceType || o.Opaque || o.ID == target.ID {
			continue
		}
		if c, ok := CompareVersions(o.Version, target.Version); ok {
			if c > 0 {
				return true
			}
		} else if o.SeqNo > target.SeqNo {
			return true
		}
	}
	return false
}

// checkSealed reads the header of the sealed package stored as blob sum:
// a malformed one is refused at upload, not by every device.
func (f *Repository) checkSealed(sum string) error {
	b, err := f.st.OpenBlob(sum)
	if err != nil {
		return fmt.Errorf("read back sealed package: %w", err)
	}
	h, err := seal.ReadHeader(b, b.Size())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	f.dm.Logger().Info("sealed package stored as it came", "sha256", sum[:16], "encrypted", h.Encrypted, "recipients", h.Recipients, "announcesKey", h.NewKey != nil)
	return nil
}
