package tree

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// dictID names the raw dictionary (the patched old files) of the data
// frame: 0, as zstd --patch-from writes, so frames from either encoder decode
// the same way.
const dictID = 0

// maxWindow bounds the zstd window of every frame: larger frames would need
// more RAM on the device than any target we have.
const maxWindow = 1 << 27

func window(n int) int {
	w := 1 << 10
	for w < n && w < maxWindow {
		w <<= 1
	}
	return w
}

// compress makes one zstd frame of src with dict (nil: none) as raw
// dictionary. The Go encoder's best level has no optimal parser: on the
// mdi-svg meta.json change it gives 4,477 bytes where zstd(1) -19 gives
// 3,726, enough to lose to zstd --patch-from on the tars. So when zstd(1) is
// installed (the host that makes packages, not the device) its frame is used
// if smaller and if it decodes back to src with the Go decoder the device
// side uses; the format is the same, only the encoder's search differs.
func compress(src, dict []byte, tryCLI bool) ([]byte, error) {
	opts := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(window(len(src) + len(dict))), zstd.WithZeroFrames(true)}
	if dict != nil {
		opts = append(opts, zstd.WithEncoderDictRaw(dictID, dict))
	}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	best := enc.EncodeAll(src, nil)
	if !tryCLI {
		return best, nil
	}
	if cli, err := compressCLI(src, dict); err == nil && len(cli) < len(best) {
		if got, err := decompress(cli, dict, len(src)); err == nil && bytes.Equal(got, src) {
			best = cli
		}
	}
	return best, nil
}

func compressCLI(src, dict []byte) ([]byte, error) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "fota-tree-zstd")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	in := filepath.Join(tmp, "src")
	if err := os.WriteFile(in, src, 0o600); err != nil {
		return nil, err
	}
	args := []string{"-q", "-c", "--no-check", "--ultra", "-22", "--long=27", "--single-thread"}
	if dict != nil {
		d := filepath.Join(tmp, "dict")
		if err := os.WriteFile(d, dict, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--patch-from="+d)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append(args, in)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("zstd: %w: %s", err, stderr.Bytes())
	}
	return out, nil
}

func decompress(frame, dict []byte, size int) ([]byte, error) {
	d, err := zstd.NewReader(bytes.NewReader(frame), decoderOpts(dict)...)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return io.ReadAll(io.LimitReader(d, int64(size)+1))
}

// Make writes a package that turns the tree at oldDir into the tree at
// newDir, signed with key.
func Make(oldDir, newDir string, key ed25519.PrivateKey) ([]byte, error) {
	oldM, err := Scan(oldDir)
	if err != nil {
		return nil, err
	}
	newM, err := Scan(newDir)
	if err != nil {
		return nil, err
	}
	h := &Header{OldRoot: oldM.Root(), NewRoot: newM.Root()}
	byHash := map[[32]byte]int{}
	for i, e := range oldM {
		if _, ok := byHash[e.Hash]; e.Kind == File && !ok {
			byHash[e.Hash] = i
		}
	}
	for i, e := range oldM {
		if j := newM.index(e.Path); j < 0 || newM[j].Kind != e.Kind {
			h.Deletes = append(h.Deletes, i)
		}
	}
	var data, dict []byte
	for _, e := range newM {
		o := oldM.index(e.Path)
		if o >= 0 && oldM[o].Kind == e.Kind && oldM[o].Mode == e.Mode && oldM[o].Hash == e.Hash && oldM[o].Target == e.Target {
			continue // the same path, the same everything: nothing to send
		}
		p := Put{Entry: e}
		p.Hash = [32]byte{} // the manifest root covers content; the wire carries no per-file hash
		if e.Kind == File {
			if src, ok := byHash[e.Hash]; ok {
				if o >= 0 && oldM[o].Hash == e.Hash {
					src = o // a mode change: the same path is the obvious source
				}
				p.Src, p.Old = srcCopy, src
			} else {
				content, err := os.ReadFile(filepath.Join(newDir, filepath.FromSlash(e.Path)))
				if err != nil {
					return nil, err
				}
				if sha256.Sum256(content) != e.Hash {
					return nil, fmt.Errorf("%s changed while the package was being made: make it again", e.Path)
				}
				p.Src = srcLiteral
				if o >= 0 && oldM[o].Kind == File {
					p.Src, p.Old = srcReplace, o
					old, err := os.ReadFile(filepath.Join(oldDir, filepath.FromSlash(e.Path)))
					if err != nil {
						return nil, err
					}
					if helps, err := referenceHelps(old, content); err != nil {
						return nil, err
					} else if helps {
						p.Src = srcPatch
						dict = append(dict, old...)
					}
				}
				data = append(data, content...)
			}
		}
		h.Puts = append(h.Puts, p)
	}
	idx, err := compress(h.encodeIndex(), nil, true)
	if err != nil {
		return nil, err
	}
	lit, err := compress(data, dict, true)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(magic)
	b.WriteByte(formatVersion)
	b.Write(h.OldRoot[:])
	b.Write(h.NewRoot[:])
	b.Write(binary.AppendUvarint(nil, uint64(len(idx))))
	b.Write(idx)
	b.Write(lit)
	d := sha256.Sum256(b.Bytes())
	b.Write(ed25519.Sign(key, append([]byte(sigDomain), d[:]...)))
	return b.Bytes(), nil
}

// referenceHelps says whether the old file, as zstd dictionary, makes the
// new content smaller. For already compressed members (woff2 fonts rebuilt)
// it rarely does: then the old file stays out of the dictionary, so the
// device does not have to hold it, and the content is compressed with the
// rest, where zstd stores incompressible blocks as they are (3 bytes of
// header per 128 KiB block).
func referenceHelps(old, content []byte) (bool, error) {
	withOld, err := compress(content, old, false)
	if err != nil {
		return false, err
	}
	alone, err := compress(content, nil, false)
	if err != nil {
		return false, err
	}
	return len(withOld) < len(alone), nil
}
