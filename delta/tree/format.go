package tree

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// The package layout (all integers unsigned varints):
//
//	"FOTATREE" version(1) oldRoot[32] newRoot[32]
//	indexLen index          zstd frame: deletes and puts (below)
//	data                    zstd frame: the content of every literal and patched put, in put order
//	signature[64]           Ed25519 over sigDomain + SHA-256 of everything before it
//
// The index is a frame of its own so that `fota delta info` reads it without
// the old tree. The data frame's raw dictionary is the old files of the
// patched puts, concatenated in put order: one frame for everything lets a
// small change or a new file share context with all the others (a new SVG
// icon is mostly like the icons before it, its name is in meta.json), which
// per-file frames lose in headers and fresh entropy tables (measured on
// mdi-svg: 10,461 bytes against 11,046).
const (
	magic         = "FOTATREE"
	formatVersion = 1
	sigDomain     = "fota tree package v1\x00"
	fixedHeader   = len(magic) + 1 + 32 + 32
	// maxIndex bounds the decompressed index so a hostile package cannot make
	// the decoder allocate without limit before its signature is checked.
	maxIndex = 64 << 20
)

// Sources of a put file's content.
const (
	srcCopy    = 0 // an old file with the same content (a rename, move or mode change)
	srcLiteral = 1 // from the data frame
	srcPatch   = 2 // from the data frame, whose dictionary holds the old file Old
	srcReplace = 3 // from the data frame, replacing the old file Old of the same path (so info can tell changed from added)
)

// Errors callers branch on.
var (
	ErrCorrupt   = errors.New("tree package corrupt")
	ErrSignature = errors.New("tree package signature does not verify")
	ErrOldTree   = errors.New("tree package was made for another old tree")
)

// Put is one path of the new tree that is not the same path of the old tree
// with the same kind, mode and content.
type Put struct {
	Entry          // Path, Kind, Mode, Target; Size for files
	Src      byte  // srcCopy, srcLiteral, srcPatch or srcReplace (files)
	Old      int   // the old manifest index of a copy's or patch's source
	FrameLen int64 // a patch's frame length in the package
}

// Header is a parsed tree package.
type Header struct {
	OldRoot, NewRoot [32]byte
	Deletes          []int // old manifest indexes of paths absent from the new tree (or of another kind)
	Puts             []Put
	IndexLen         int64
	DataOff          int64
	DataLen          int64
	Size             int64 // the whole package, signature included
}

// IsTreePackage tells a tree package from an image package by its magic.
func IsTreePackage(b []byte) bool { return bytes.HasPrefix(b, []byte(magic)) }

func corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

// Parse reads a package's header and index from r without checking its
// signature (Verify does both). It never panics on input.
func Parse(r io.ReaderAt, size int64) (*Header, error) {
	if size < int64(fixedHeader)+ed25519.SignatureSize+2 {
		return nil, corrupt("%d bytes is too short for a tree package", size)
	}
	body := size - ed25519.SignatureSize
	var fixed [fixedHeader]byte
	if _, err := r.ReadAt(fixed[:], 0); err != nil {
		return nil, corrupt("read header: %v", err)
	}
	if string(fixed[:len(magic)]) != magic {
		return nil, corrupt("not a tree package (magic %q)", fixed[:len(magic)])
	}
	if v := fixed[len(magic)]; v != formatVersion {
		return nil, corrupt("format version %d, this build reads %d: update fota", v, formatVersion)
	}
	h := &Header{Size: size}
	copy(h.OldRoot[:], fixed[len(magic)+1:])
	copy(h.NewRoot[:], fixed[len(magic)+33:])
	br := bufio.NewReader(io.NewSectionReader(r, int64(fixedHeader), body-int64(fixedHeader)))
	n, err := binary.ReadUvarint(br)
	if err != nil || n > uint64(body) {
		return nil, corrupt("index length")
	}
	h.IndexLen = int64(n)
	idxOff := int64(fixedHeader + uvarintLen(n))
	if idxOff+h.IndexLen > body {
		return nil, corrupt("index of %d bytes runs past the end", n)
	}
	h.DataOff = idxOff + h.IndexLen
	h.DataLen = body - h.DataOff
	dec, err := zstd.NewReader(io.NewSectionReader(r, idxOff, h.IndexLen), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(maxIndex), zstd.WithDecoderMaxWindow(maxIndex))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	idx, err := io.ReadAll(io.LimitReader(dec, maxIndex+1))
	if err != nil || len(idx) > maxIndex {
		return nil, corrupt("index does not decompress: %v", err)
	}
	if err := h.decodeIndex(idx); err != nil {
		return nil, err
	}
	return h, nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = corrupt("index: %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = corrupt("index: %s runs past the end", what)
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (h *Header) decodeIndex(idx []byte) error {
	r := &reader{b: idx}
	nd := r.uvarint("delete count")
	if nd > uint64(len(idx)) {
		return corrupt("index: %d deletes in %d bytes", nd, len(idx))
	}
	prev := -1
	for i := uint64(0); i < nd && r.err == nil; i++ {
		d := r.uvarint("delete")
		if d > 1<<31 {
			return corrupt("index: delete %d out of range", d)
		}
		prev += int(d) + 1
		h.Deletes = append(h.Deletes, prev)
	}
	np := r.uvarint("put count")
	if np > uint64(len(idx)) {
		return corrupt("index: %d puts in %d bytes", np, len(idx))
	}
	last := ""
	for i := uint64(0); i < np && r.err == nil; i++ {
		var p Put
		common := r.uvarint("path prefix")
		suffix := r.bytes(r.uvarint("path length"), "path")
		if common > uint64(len(last)) {
			return corrupt("index: path prefix %d longer than the previous path", common)
		}
		p.Path = last[:common] + string(suffix)
		if r.err == nil && (p.Path <= last || !validPath(p.Path)) {
			return corrupt("index: path %q out of order or not a clean relative path", p.Path)
		}
		last = p.Path
		k := r.bytes(1, "kind")
		if k != nil {
			p.Kind = Kind(k[0])
		}
		p.Mode = fs.FileMode(r.uvarint("mode"))
		if p.Mode&^fs.ModePerm != 0 {
			return corrupt("index: mode %o of %s", p.Mode, p.Path)
		}
		switch p.Kind {
		case Dir:
		case Symlink:
			p.Target = string(r.bytes(r.uvarint("link length"), "link target"))
		case File:
			s := r.bytes(1, "source")
			if s != nil {
				p.Src = s[0]
			}
			p.Size = int64(r.uvarint("size") & (1<<62 - 1))
			switch p.Src {
			case srcCopy, srcPatch, srcReplace:
				o := r.uvarint("old index")
				if o > 1<<31 {
					return corrupt("index: old index %d", o)
				}
				p.Old = int(o)
			case srcLiteral:
			default:
				if r.err == nil {
					return corrupt("index: source %d of %s", p.Src, p.Path)
				}
			}
		default:
			if r.err == nil {
				return corrupt("index: kind %q of %s", p.Kind, p.Path)
			}
		}
		h.Puts = append(h.Puts, p)
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return corrupt("index: %d bytes after the last put", len(r.b))
	}
	return nil
}

// validPath refuses what could escape the tree or name the journal.
func validPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") || strings.Contains(p, "\\") {
		return false
	}
	for i, s := range strings.Split(p, "/") {
		if s == "" || s == "." || s == ".." || (i == 0 && strings.HasPrefix(s, JournalPrefix)) {
			return false
		}
	}
	return true
}

func (h *Header) encodeIndex() []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(h.Deletes)))
	prev := -1
	for _, d := range h.Deletes {
		b = binary.AppendUvarint(b, uint64(d-prev-1))
		prev = d
	}
	b = binary.AppendUvarint(b, uint64(len(h.Puts)))
	last := ""
	for _, p := range h.Puts {
		c := 0
		for c < len(last) && c < len(p.Path) && last[c] == p.Path[c] {
			c++
		}
		b = binary.AppendUvarint(b, uint64(c))
		b = binary.AppendUvarint(b, uint64(len(p.Path)-c))
		b = append(b, p.Path[c:]...)
		last = p.Path
		b = append(b, byte(p.Kind))
		b = binary.AppendUvarint(b, uint64(p.Mode))
		switch p.Kind {
		case Symlink:
			b = binary.AppendUvarint(b, uint64(len(p.Target)))
			b = append(b, p.Target...)
		case File:
			b = append(b, p.Src)
			b = binary.AppendUvarint(b, uint64(p.Size))
			if p.Src != srcLiteral {
				b = binary.AppendUvarint(b, uint64(p.Old))
			}
		}
	}
	return b
}

// Verify checks the signature over the whole package (read as a stream, so
// it costs no RAM beyond a buffer) and then parses it.
func Verify(r io.ReaderAt, size int64, pub ed25519.PublicKey) (*Header, error) {
	if size < ed25519.SignatureSize {
		return nil, corrupt("%d bytes is too short for a tree package", size)
	}
	d := sha256.New()
	if _, err := io.Copy(d, io.NewSectionReader(r, 0, size-ed25519.SignatureSize)); err != nil {
		return nil, fmt.Errorf("read package: %w", err)
	}
	sig := make([]byte, ed25519.SignatureSize)
	if _, err := r.ReadAt(sig, size-ed25519.SignatureSize); err != nil {
		return nil, fmt.Errorf("read package signature: %w", err)
	}
	if !ed25519.Verify(pub, append([]byte(sigDomain), d.Sum(nil)...), sig) {
		return nil, fmt.Errorf("%w: it was signed by another key or changed after signing; make it again with the key whose public half the device trusts", ErrSignature)
	}
	return Parse(r, size)
}

// Summary counts what a package does, for `fota delta info`.
type Summary struct {
	Removed, Added, Copied, Renamed, Changed, Patched, Dirs, Symlinks int
	AddedBytes, CopiedBytes, ChangedBytes                             int64
}

// Summary counts the package's deletes and puts. A copy whose source is
// removed is a rename or a move.
func (h *Header) Summary() Summary {
	s := Summary{Removed: len(h.Deletes)}
	gone := map[int]bool{}
	for _, d := range h.Deletes {
		gone[d] = true
	}
	for _, p := range h.Puts {
		switch {
		case p.Kind == Dir:
			s.Dirs++
		case p.Kind == Symlink:
			s.Symlinks++
		case p.Src == srcLiteral:
			s.Added++
			s.AddedBytes += p.Size
		case p.Src == srcCopy:
			s.Copied++
			s.CopiedBytes += p.Size
			if gone[p.Old] {
				s.Renamed++
			}
		default:
			s.Changed++
			s.ChangedBytes += p.Size
			if p.Src == srcPatch {
				s.Patched++
			}
		}
	}
	return s
}

// Memory is what decoding the data frame holds besides buffers: the zstd
// window its header declares, and the dictionary (the patched old files,
// sized from the old tree's manifest), which zstd needs whole.
func (h *Header) Memory(r io.ReaderAt, oldM Manifest) (window, dict int64, err error) {
	var zh zstd.Header
	b := make([]byte, min(h.DataLen, zstd.HeaderMaxSize))
	if _, err := r.ReadAt(b, h.DataOff); err != nil {
		return 0, 0, err
	}
	if err := zh.Decode(b); err != nil {
		return 0, 0, corrupt("data frame header: %v", err)
	}
	window = int64(zh.WindowSize)
	if zh.SingleSegment { // the window is the content
		window = int64(zh.FrameContentSize)
	}
	for _, p := range h.Puts {
		if p.Kind == File && p.Src == srcPatch && p.Old < len(oldM) {
			dict += oldM[p.Old].Size
		}
	}
	return window, dict, nil
}
