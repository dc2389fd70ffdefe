package tree

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/klauspost/compress/zstd"
)

// applier holds what both Apply and ApplyInPlace need once a package has been
// verified against its signature and the old tree.
type applier struct {
	h      *Header
	r      io.ReaderAt
	oldDir string
	oldM   Manifest
	newM   Manifest
	data   *zstd.Decoder
}

func decoderOpts(dict []byte) []zstd.DOption {
	o := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(maxWindow)}
	if dict != nil {
		o = append(o, zstd.WithDecoderDictRaw(dictID, dict))
	}
	return o
}

// checkOld refuses a package whose old tree is not oldM, before anything is
// written, and checks that every index the package names exists.
func (h *Header) checkOld(oldM Manifest, dir string) error {
	if root := oldM.Root(); root != h.OldRoot {
		return fmt.Errorf("%w: %s is tree %s, the package wants %s; nothing was changed: make the package from this tree, or apply it to the tree it was made from",
			ErrOldTree, dir, hex.EncodeToString(root[:8]), hex.EncodeToString(h.OldRoot[:8]))
	}
	for _, d := range h.Deletes {
		if d < 0 || d >= len(oldM) {
			return corrupt("delete of old entry %d, the old tree has %d", d, len(oldM))
		}
	}
	for _, p := range h.Puts {
		if p.Kind == File && p.Src != srcLiteral && (p.Old < 0 || p.Old >= len(oldM) || oldM[p.Old].Kind != File) {
			return corrupt("%s names old entry %d, which is not a file", p.Path, p.Old)
		}
	}
	return nil
}

// newManifest is the old manifest with the deletes removed and the puts in
// place: what the new tree must be, apart from content hashes (the root
// check at the end covers those).
func (h *Header) newManifest(oldM Manifest) Manifest {
	gone := make(map[int]bool, len(h.Deletes))
	for _, d := range h.Deletes {
		gone[d] = true
	}
	put := make(map[string]bool, len(h.Puts))
	for _, p := range h.Puts {
		put[p.Path] = true
	}
	var m Manifest
	for i, e := range oldM {
		if !gone[i] && !put[e.Path] {
			m = append(m, e)
		}
	}
	for _, p := range h.Puts {
		m = append(m, p.Entry)
	}
	sort.Slice(m, func(i, j int) bool { return m[i].Path < m[j].Path })
	return m
}

func open(oldDir string, r io.ReaderAt, size int64, pub ed25519.PublicKey) (*applier, error) {
	h, err := Verify(r, size, pub)
	if err != nil {
		return nil, err
	}
	oldM, err := Scan(oldDir)
	if err != nil {
		return nil, err
	}
	if err := h.checkOld(oldM, oldDir); err != nil {
		return nil, err
	}
	return newApplier(h, r, oldDir, oldM)
}

// newApplier starts the data frame's decoder. Its dictionary, the old files
// of the patched puts, is what the apply needs in RAM beyond buffers and the
// zstd window.
func newApplier(h *Header, r io.ReaderAt, oldDir string, oldM Manifest) (*applier, error) {
	var dict []byte
	for _, p := range h.Puts {
		if p.Kind == File && p.Src == srcPatch {
			b, err := os.ReadFile(filepath.Join(oldDir, filepath.FromSlash(oldM[p.Old].Path)))
			if err != nil {
				return nil, err
			}
			dict = append(dict, b...)
		}
	}
	d, err := zstd.NewReader(io.NewSectionReader(r, h.DataOff, h.DataLen), decoderOpts(dict)...)
	if err != nil {
		return nil, err
	}
	return &applier{h: h, r: r, oldDir: oldDir, oldM: oldM, newM: h.newManifest(oldM), data: d}, nil
}

func (a *applier) close() { a.data.Close() }

func (a *applier) oldPath(i int) string {
	return filepath.Join(a.oldDir, filepath.FromSlash(a.oldM[i].Path))
}

// content streams a put file's new content to w. Puts that are not copies
// must be asked for in put order: they share one stream.
func (a *applier) content(p *Put, w io.Writer) error {
	var src io.Reader = a.data // literal, replaced and patched puts, in put order
	if p.Src == srcCopy {
		f, err := os.Open(a.oldPath(p.Old))
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}
	if _, err := io.CopyN(w, src, p.Size); err != nil {
		return fmt.Errorf("%s: decode %d bytes: %w (%w)", p.Path, p.Size, err, ErrCorrupt)
	}
	return nil
}

// Apply writes the new tree to outDir, which must not exist or be empty,
// reading files from oldDir and the package as streams. The package is
// verified (signature, old tree) before outDir is created, and the written
// tree is checked against the package's new manifest at the end.
func Apply(oldDir string, r io.ReaderAt, size int64, pub ed25519.PublicKey, outDir string) error {
	a, err := open(oldDir, r, size, pub)
	if err != nil {
		return err
	}
	defer a.close()
	if ents, err := os.ReadDir(outDir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty: give a new directory to write the new tree to", outDir)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	puts := make(map[string]*Put, len(a.h.Puts))
	for i := range a.h.Puts {
		puts[a.h.Puts[i].Path] = &a.h.Puts[i]
	}
	var dirs []Entry
	for _, e := range a.newM {
		dst := filepath.Join(outDir, filepath.FromSlash(e.Path))
		switch e.Kind {
		case Dir:
			if err := os.Mkdir(dst, 0o755); err != nil {
				return err
			}
			dirs = append(dirs, e)
		case Symlink:
			if err := os.Symlink(e.Target, dst); err != nil {
				return err
			}
		case File:
			p := puts[e.Path]
			if p == nil { // unchanged: the same path of the old tree
				p = &Put{Entry: e, Src: srcCopy, Old: a.oldM.index(e.Path)}
			}
			if err := writeFile(dst, e.Mode, false, func(w io.Writer) error { return a.content(p, w) }); err != nil {
				return err
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- { // children first, so a read-only directory is filled before it closes
		if err := os.Chmod(filepath.Join(outDir, filepath.FromSlash(dirs[i].Path)), dirs[i].Mode); err != nil {
			return err
		}
	}
	return checkNew(outDir, a.h)
}

// writeFile creates dst with what fill writes, fsynced when sync is set (the
// in-place staging area, whose files must be durable before the commit
// record; a fresh output tree is checked as a whole at the end instead).
func writeFile(dst string, mode os.FileMode, sync bool, fill func(io.Writer) error) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(dst, mode)
	}
	return err
}

// ErrNewTree means the written tree is not the one the package describes.
var ErrNewTree = errors.New("the tree written does not match the package's new manifest")

func checkNew(dir string, h *Header) error {
	m, err := Scan(dir)
	if err != nil {
		return err
	}
	if m.Root() != h.NewRoot {
		return fmt.Errorf("%w: %s; the package or the file system is damaged: apply again from the old tree", ErrNewTree, dir)
	}
	return nil
}
