// Package tree makes and applies signed delta packages between two file
// trees (an application's asset directory, a root file system overlay): files
// added, removed, renamed or moved (found by content hash), changed (zstd with
// the old file as reference, or the whole file compressed when that is
// smaller), modes, symlinks and directories. A package names the old tree by
// the SHA-256 of its manifest and the new tree by the SHA-256 of its manifest,
// so a package for another old tree is refused before anything changes, and
// the result is checked file by file (through the manifest hash) at the end.
//
// Apply writes the new tree to a fresh directory; ApplyInPlace updates a tree
// in place with a journal under DIR/.fota-tree so that a power cut at any
// moment leaves, after resuming, either the whole old or the whole new tree.
//
// # Size
//
// Everything that is not a copy goes into one zstd frame whose raw
// dictionary is the old versions of the changed files that gain from it
// (what zstd --patch-from does with one file), so small changes and new
// files share one context. Made with zstd(1) --ultra -22 when it is installed
// (the Go encoder has no optimal parser: about 10 % larger on text); the
// device side decodes with github.com/klauspost/compress either way.
// `fota delta bench --tree ../shared/trees`: mdi-svg 7.3.67 -> 7.4.47 10,321
// bytes (zstd --patch-from on the tars 11,226, xdelta3 12,741);
// fontsource-inter 5.2.8 -> 5.3.0 312 (591, 382); 5.1.1 -> 5.2.8 3,565,336
// (3,566,763): rebuilt woff2 fonts are brotli inside, so a delta gains
// 0.5 % over storing them; files the old version does not help are kept out
// of the dictionary and stored as zstd raw blocks (3 bytes per 128 KiB).
//
// # RAM
//
// Apply streams every file (io.CopyN from the decoder or the old file) and
// holds no file content beyond zstd's needs, but zstd needs the dictionary
// whole and a window as large as the frame's content: for mdi-svg 2.0 MB of
// dictionary (the old meta.json) plus a 2.1 MB window; for the font rebuild
// 2.6 MB plus 4.1 MB (the Go heap's peak during Apply, measured by the
// bench: 14.7 MB and 9.8 MB; 4.6 MB for the metadata-only pair, mostly the
// manifests). That is far from a 16 KiB device budget. Meeting it
// would take a copy/insert format whose copies read the old file from
// storage by offset (as package delta's in-place player does for images)
// with a small literal window; not done. The manifests (about 150 bytes a
// path) are also held in RAM.
package tree

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kind is what a manifest entry is.
type Kind byte

// The kinds of entries; the values are the wire bytes.
const (
	Dir     Kind = 'd'
	File    Kind = 'f'
	Symlink Kind = 'l'
)

// Entry is one path of a tree, relative to its root with '/' separators.
type Entry struct {
	Path   string
	Kind   Kind
	Mode   fs.FileMode // permission bits only: owners and times do not travel
	Size   int64       // files
	Hash   [32]byte    // files: SHA-256 of the content
	Target string      // symlinks
}

// Manifest is a tree's entries sorted by path, so that a directory comes
// before what it holds ("a" < "a/b").
type Manifest []Entry

// JournalPrefix starts the names that Scan skips at the top of a tree: the
// in-place journal lives there and is no part of either tree.
const JournalPrefix = ".fota"

// Scan walks root and hashes every file, reading each file as a stream.
func Scan(root string) (Manifest, error) {
	var m Manifest
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		if !strings.Contains(rel, "/") && strings.HasPrefix(rel, JournalPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Path: rel, Mode: info.Mode().Perm()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.Kind, e.Mode = Symlink, 0
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case info.IsDir():
			e.Kind = Dir
		case info.Mode().IsRegular():
			e.Kind, e.Size = File, info.Size()
			if e.Hash, err = hashFile(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: %v is neither a file, a directory nor a symlink: remove it or leave it out of the tree", p, info.Mode().Type())
		}
		m = append(m, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan tree %s: %w", root, err)
	}
	sort.Slice(m, func(i, j int) bool { return m[i].Path < m[j].Path })
	return m, nil
}

func hashFile(p string) ([32]byte, error) {
	var h [32]byte
	f, err := os.Open(p)
	if err != nil {
		return h, err
	}
	defer f.Close()
	s := sha256.New()
	if _, err := io.Copy(s, f); err != nil {
		return h, err
	}
	copy(h[:], s.Sum(nil))
	return h, nil
}

// Root is the tree's identity: SHA-256 over the canonical encoding of every
// entry (path, kind, mode, size, content hash or link target). Two trees with
// the same Root hold the same bytes under the same names and modes.
func (m Manifest) Root() [32]byte {
	h := sha256.New()
	var b [binary.MaxVarintLen64]byte
	for _, e := range m {
		h.Write(b[:binary.PutUvarint(b[:], uint64(len(e.Path)))])
		h.Write([]byte(e.Path))
		h.Write([]byte{byte(e.Kind)})
		h.Write(b[:binary.PutUvarint(b[:], uint64(e.Mode))])
		switch e.Kind {
		case File:
			h.Write(b[:binary.PutUvarint(b[:], uint64(e.Size))])
			h.Write(e.Hash[:])
		case Symlink:
			h.Write(b[:binary.PutUvarint(b[:], uint64(len(e.Target)))])
			h.Write([]byte(e.Target))
		}
	}
	var r [32]byte
	copy(r[:], h.Sum(nil))
	return r
}

// index returns the position of path in m, or -1.
func (m Manifest) index(path string) int {
	i := sort.Search(len(m), func(i int) bool { return m[i].Path >= path })
	if i < len(m) && m[i].Path == path {
		return i
	}
	return -1
}
