package delta

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
)

// Apply verifies patch with pub and applies it to old on the host, in any
// mode, returning the new image. Nothing is returned unless the signature,
// the old image's hash and the result's hash all check.
func Apply(old, patch []byte, pub ed25519.PublicKey) ([]byte, error) {
	h, err := Verify(patch, pub)
	if err != nil {
		return nil, err
	}
	if err := checkOld(h, old); err != nil {
		return nil, err
	}
	if h.InPlace {
		region := make([]byte, h.Region())
		copy(region, old)
		if err := ApplyInPlace(region, patch, pub); err != nil {
			return nil, err
		}
		return region[:h.NewSize], nil
	}
	out := make([]byte, h.NewSize)
	if h.Steps > 0 {
		p, err := NewInPlacePlayer(bytes.NewReader(patch), h, make([]byte, ArenaSize(h)))
		if err != nil {
			return nil, err
		}
		if err := p.Next(bytes.NewReader(old), out); err != nil {
			return nil, err
		}
	}
	if sha256.Sum256(out) != h.NewHash {
		return nil, ErrNewImage
	}
	return out, nil
}

func checkOld(h *Header, old []byte) error {
	if len(old) != int(h.OldSize) {
		return fmt.Errorf("%w: old image is %d bytes, the package wants %d", ErrOldImage, len(old), h.OldSize)
	}
	if sha256.Sum256(old) != h.OldHash {
		return fmt.Errorf("%w: SHA-256 of the old image differs", ErrOldImage)
	}
	return nil
}

// resumeEvery is how often ApplyInPlace replaces its player by a fresh one
// repositioned with SkipTo, as after a power cut: every 8 steps, and at
// most 32 times in all. Every step would make the host apply quadratic in
// the number of steps; TestInPlaceNeverReadsOverwritten resumes at every
// step.
func resumeEvery(steps int) int { return max(8, (steps+31)/32) }

// ApplyInPlace applies an in-place package to region, which holds the old
// image at its start and is at least Header.Region() bytes long, the way
// the device does: step by step, each step decoded into an erase-block
// buffer with sources read from region as it has been overwritten so far,
// then written over its block. Every resumeEvery steps (and at the last
// step) the player is replaced by a fresh one repositioned with SkipTo, as
// after a power cut. A written block's bytes past the new image are set to
// 0xFF, as erased flash. On success region[:NewSize] is the new image,
// checked against its hash.
func ApplyInPlace(region []byte, patch []byte, pub ed25519.PublicKey) error {
	h, err := Verify(patch, pub)
	if err != nil {
		return err
	}
	if !h.InPlace {
		return fmt.Errorf("delta: ApplyInPlace given a sequential package")
	}
	if len(region) < int(h.Region()) {
		return fmt.Errorf("delta: region of %d bytes, the package needs %d", len(region), h.Region())
	}
	if err := checkOld(h, region[:h.OldSize]); err != nil {
		return err
	}
	arena := make([]byte, ArenaSize(h))
	block := make([]byte, h.EraseBlock)
	// The stash: the stashed old blocks, copied aside before the first
	// step, as the installer copies them into its staging area.
	bs := int(h.EraseBlock)
	stash := make([]byte, len(h.Stash)*bs)
	for i, b := range h.Stash {
		copy(stash[i*bs:(i+1)*bs], region[int(b)*bs:min((int(b)+1)*bs, int(h.OldSize))])
	}
	src := &sourceReader{region: region[:h.Region()], stash: stash}
	var p *InPlacePlayer
	every := resumeEvery(h.Steps)
	for k := 0; k < h.Steps; k++ {
		if p == nil || k%every == 0 || k == h.Steps-1 {
			if p, err = NewInPlacePlayer(bytes.NewReader(patch), h, arena); err != nil {
				return err
			}
			if err := p.SkipTo(k); err != nil {
				return err
			}
		}
		off, n := p.Target(k)
		if err := p.Next(src, block); err != nil {
			return err
		}
		copy(region[off:], block[:n])
		for i := off + uint32(n); i < off+h.EraseBlock; i++ {
			region[i] = 0xFF
		}
	}
	if sha256.Sum256(region[:h.NewSize]) != h.NewHash {
		return ErrNewImage
	}
	return nil
}

// sourceReader is the source of an in-place step on the host: the image
// region followed by the stash slots.
type sourceReader struct{ region, stash []byte }

func (r *sourceReader) ReadAt(p []byte, off int64) (int, error) {
	rl := int64(len(r.region))
	if off < 0 || off+int64(len(p)) > rl+int64(len(r.stash)) {
		return 0, io.EOF
	}
	if off >= rl {
		return copy(p, r.stash[off-rl:]), nil
	}
	if off+int64(len(p)) > rl {
		return 0, io.EOF // a read crosses from the region into the stash
	}
	return copy(p, r.region[off:]), nil
}

// Inspect decodes the whole instruction stream of a package (structure
// only, no images needed) and returns its header and instruction counts.
func Inspect(patch []byte) (*Header, Stats, error) {
	h, err := Parse(patch)
	if err != nil {
		return nil, Stats{}, err
	}
	p, err := NewInPlacePlayer(bytes.NewReader(patch), h, make([]byte, ArenaSize(h)))
	if err != nil {
		return nil, Stats{}, err
	}
	if err := p.SkipTo(h.Steps); err != nil {
		return h, p.Stats, err
	}
	return h, p.Stats, nil
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
