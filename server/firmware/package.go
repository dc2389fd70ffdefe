package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/server/store"
)

// Kinds of package.
const (
	PackageDelta  = store.PackageDelta
	PackageFull   = store.PackageFull
	PackageOpaque = store.PackageOpaque
)

// Package is a signed update package (or an opaque one) made for a target
// image, kept in the store.
type Package = store.Package

// PathOf is the CoAP path a device downloads p from (the Package URI's path).
func PathOf(p Package) string { return "/fw/" + p.ID }

// packageID names a package by everything that determines its bytes, so the
// same request always finds the same cached package and a stable URI.
func packageID(kind string, from, to Image, prof DeviceProfile, pub []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d\x00%d\x00%x", kind, from.SHA256, to.SHA256, to.SeqNo, prof.EraseBlock, prof.RAM, pub)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// PackageFor returns the package that takes a device of target's type
// running fromVersion to target: the opaque image itself; else a delta when
// fromVersion is a stored image and full is false; else the full image as a
// signed package. A package is made once and then served from the store.
func (f *Repository) PackageFor(target Image, fromVersion string, full bool) (Package, error) {
	if target.Opaque {
		p := Package{ID: packageID(PackageOpaque, Image{}, target, DeviceProfile{}, nil), Kind: PackageOpaque,
			DeviceType: target.DeviceType, ToVersion: target.Version, ToImage: target.ID,
			Size: target.Size, SHA256: target.SHA256, Created: time.Now().UTC()}
		return f.ensurePackage(p, nil)
	}
	prof := f.Profile(target.DeviceType)
	pub := f.PublicKey()
	gen, err := f.Generation(target.DeviceType)
	if err != nil {
		return Package{}, err
	}
	// The rollback counter: the image's, raised by the downgrades allowed
	// so far (AllowDowngrade). packageID includes it, so a package made
	// before a downgrade is not served after it.
	counted := target
	counted.SeqNo = target.SeqNo + gen*generationUnit
	var from Image
	kind := PackageFull
	if !full && fromVersion != "" && fromVersion != target.Version {
		if img, err := f.FindImage(target.DeviceType, fromVersion); err == nil && !img.Opaque {
			from, kind = img, PackageDelta
		}
	}
	id := packageID(kind, from, counted, prof, pub)
	if p, err := f.Package(id); err == nil {
		return p, nil
	}
	// One build at a time; the second asker finds the first one's result.
	f.buildMu.Lock()
	defer f.buildMu.Unlock()
	if p, err := f.Package(id); err == nil {
		return p, nil
	}
	newData, err := f.ImageData(target)
	if err != nil {
		return Package{}, err
	}
	var oldData []byte
	if kind == PackageDelta {
		if oldData, err = f.ImageData(from); err != nil {
			return Package{}, err
		}
	}
	start := time.Now()
	// A full package is a delta from nothing: the same signed format and
	// the same in-place installer on the device, with every byte a literal.
	pkg, err := delta.MakeSigned(oldData, newData, delta.Options{
		InPlace: true, EraseBlock: prof.EraseBlock, RAM: prof.RAM,
		DeviceType: target.DeviceType, Version: target.Version, SeqNo: counted.SeqNo,
	}, f.key)
	if err != nil {
		return Package{}, fmt.Errorf("make %s package %s -> %s: %w", kind, fromVersion, target.Version, err)
	}
	f.builds++
	sum := sha256.Sum256(pkg)
	p := Package{ID: id, Kind: kind, DeviceType: target.DeviceType, FromVersion: from.Version, ToVersion: target.Version,
		FromImage: from.ID, ToImage: target.ID, Size: len(pkg), SHA256: hex.EncodeToString(sum[:]), Created: time.Now().UTC()}
	p, err = f.ensurePackage(p, pkg)
	if err == nil {
		f.dm.Logger().Info("firmware package made", "id", p.ID, "kind", kind, "deviceType", p.DeviceType,
			"from", p.FromVersion, "to", p.ToVersion, "size", p.Size, "image", target.Size, "took", time.Since(start).Round(time.Millisecond))
	}
	return p, err
}

// ensurePackage stores p (and data as its blob, unless nil: the blob is
// already there) unless a package with its ID exists; it returns the stored one.
func (f *Repository) ensurePackage(p Package, data []byte) (Package, error) {
	if data != nil {
		if _, _, err := f.st.PutBlob(bytes.NewReader(data), int64(len(data))); err != nil {
			return Package{}, fmt.Errorf("store package %s: %w", p.ID, err)
		}
	}
	p, err := f.st.PutPackage(p)
	if err != nil {
		return Package{}, fmt.Errorf("store package %s: %w", p.ID, err)
	}
	return p, nil
}

// Package returns a stored package, or ErrNoPackage.
func (f *Repository) Package(id string) (Package, error) {
	p, err := f.st.Package(id)
	if errors.Is(err, store.ErrNotFound) {
		return Package{}, fmt.Errorf("%w: %q", ErrNoPackage, id)
	}
	return p, err
}

// Packages lists the stored packages, newest first.
func (f *Repository) Packages() ([]Package, error) {
	out, err := f.st.Packages()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, err
}

// PackageData returns the bytes of a package, shared and read-only: one
// copy per package in memory however many devices download it (go-coap's
// per-transfer state then holds a reference, not a copy).
func (f *Repository) PackageData(p Package) ([]byte, error) {
	if b := f.cache.get(p.ID); b != nil {
		return b, nil
	}
	b, err := f.readBlob(p.SHA256)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != p.SHA256 {
		return nil, errors.New("firmware: stored package " + p.ID + " does not match its hash")
	}
	f.cache.put(p.ID, b)
	return b, nil
}

// packageBlob opens a package's blob for ranged reads. The first time in
// this process it checks the stored bytes against the package's hash,
// reading them in pieces, so a corrupt package is refused before a device
// gets a byte of it.
func (f *Repository) packageBlob(p Package) (store.Blob, error) {
	b, err := f.st.OpenBlob(p.SHA256)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", p.ID, err)
	}
	if _, ok := f.verified.Load(p.ID); ok {
		return b, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(b, 0, b.Size())); err != nil {
		return nil, fmt.Errorf("package %s: read: %w", p.ID, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != p.SHA256 {
		return nil, errors.New("firmware: stored package " + p.ID + " does not match its hash")
	}
	f.verified.Store(p.ID, true)
	return b, nil
}

// packageCache keeps recently served packages in memory, bounded in bytes
// (least recently used out first).
type packageCache struct {
	mu    sync.Mutex
	limit int
	size  int
	tick  uint64
	m     map[string]*cachedPackage
}

type cachedPackage struct {
	data []byte
	used uint64
}

func newPackageCache(limit int) *packageCache {
	return &packageCache{limit: limit, m: map[string]*cachedPackage{}}
}

func (c *packageCache) get(id string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[id]
	if e == nil {
		return nil
	}
	c.tick++
	e.used = c.tick
	return e.data
}

func (c *packageCache) put(id string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok || len(b) > c.limit {
		return
	}
	for c.size+len(b) > c.limit {
		var oldest string
		var ou uint64 = ^uint64(0)
		for k, e := range c.m {
			if e.used < ou {
				oldest, ou = k, e.used
			}
		}
		c.size -= len(c.m[oldest].data)
		delete(c.m, oldest)
	}
	c.tick++
	c.m[id] = &cachedPackage{data: b, used: c.tick}
	c.size += len(b)
}

func (c *packageCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		c.size -= len(e.data)
		delete(c.m, id)
	}
}

// downloadProgress records the highest byte offset each endpoint has
// fetched of each package, for the campaigns' "downloading n%".
type downloadProgress struct {
	mu sync.Mutex
	m  map[string]int // endpoint + "\x00" + package ID -> bytes
}

func newDownloadProgress() *downloadProgress { return &downloadProgress{m: map[string]int{}} }

func (d *downloadProgress) set(ep, pkg string, end int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := ep + "\x00" + pkg
	if end > d.m[k] {
		d.m[k] = end
	}
}

func (d *downloadProgress) reset(ep, pkg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, ep+"\x00"+pkg)
}

// Fetched is how many bytes of package pkg the device ep has fetched over
// Block2 from this server process (the end of the furthest block served).
func (f *Repository) Fetched(ep, pkg string) int {
	f.progress.mu.Lock()
	defer f.progress.mu.Unlock()
	return f.progress.m[ep+"\x00"+pkg]
}

// ResetFetched forgets how much of package pkg the device ep has fetched,
// before the package is offered to it anew.
func (f *Repository) ResetFetched(ep, pkg string) { f.progress.reset(ep, pkg) }
