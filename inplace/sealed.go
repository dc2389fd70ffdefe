package inplace

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/seal"
)

// A sealed package (delta/seal: FOTS) wraps a delta package, signed over
// the bytes as sent, optionally encrypted to this device's key
// (Options.DeviceKey) and optionally announcing the next signing key. It is
// staged as it came, ciphertext and all, so no plaintext is ever at rest
// in flash; every read of the delta stream, at Stage and at each Resume,
// decrypts one authenticated chunk into a buffer from the arena.

// pkg is a package opened for installing: the delta header, the delta
// package's bytes (decrypted on the fly when sealed and encrypted), and
// the sealed header when there is one.
type pkg struct {
	hdr     *delta.Header
	payload io.ReaderAt
	seal    *seal.Header
}

// ram is the installer memory the package needs (see Need).
func (p *pkg) ram() int {
	n := Need(p.hdr)
	if p.seal != nil {
		n += p.seal.RAM()
	}
	return n
}

// trustAfter is the key the boot record trusts once this package's
// update commits: the one it announces, or the current one.
func (p *pkg) trustAfter(current ed25519.PublicKey) ed25519.PublicKey {
	if p.seal != nil && p.seal.NewKey != nil {
		return p.seal.NewKey
	}
	return current
}

// verifyPackage checks the signature of the package about to be staged
// with the boot record's trusted key and opens it. A sealed one is
// verified in one streamed pass through iobuf before its key is unwrapped:
// a package encrypted for another device is refused here, before the
// flash changes.
func verifyPackage(patch []byte, trusted ed25519.PublicKey, opts Options, a *arena, iobuf []byte) (*pkg, error) {
	if !seal.IsSealed(patch) {
		hdr, err := delta.Verify(patch, trusted)
		if err != nil {
			return nil, fmt.Errorf("verify package against the trusted key: %w", err)
		}
		return &pkg{hdr: hdr, payload: bytes.NewReader(patch)}, nil
	}
	return openSealed(bytes.NewReader(patch), int64(len(patch)), trusted, opts, a, iobuf, true)
}

// openSealed reads the sealed package r, verifies its signature (verify;
// a resume relies on the journal's hash of the staged bytes instead),
// unwraps the content key with the device key and reads the inner delta
// header through a header buffer and a chunk buffer from the arena.
func openSealed(r io.ReaderAt, size int64, trusted ed25519.PublicKey, opts Options, a *arena, iobuf []byte, verify bool) (*pkg, error) {
	sh, err := seal.ReadHeader(r, size)
	if err != nil {
		return nil, fmt.Errorf("sealed package: %w", err)
	}
	if verify {
		if err := seal.Verify(r, size, trusted, iobuf); err != nil {
			return nil, fmt.Errorf("sealed package: %w", err)
		}
	}
	cek, err := seal.FindKey(r, sh, opts.DeviceKey)
	if err != nil {
		return nil, fmt.Errorf("sealed package: %w", err)
	}
	hbuf, err := a.take(headerPrefix, "header")
	if err != nil {
		return nil, err
	}
	cbuf, err := a.take(sh.RAM(), "decryption chunk")
	if err != nil {
		return nil, err
	}
	payload, err := seal.Payload(r, sh, cek, cbuf)
	if err != nil {
		return nil, err
	}
	n := int(min(int64(len(hbuf)), sh.PayloadSize))
	if _, err := payload.ReadAt(hbuf[:n], 0); err != nil {
		return nil, fmt.Errorf("sealed package: read the delta header: %w", err)
	}
	hdr, err := delta.Parse(hbuf[:n])
	if err != nil {
		return nil, fmt.Errorf("sealed package: %w", err)
	}
	// As in stagedHeader: Parse took the prefix's tail for the signature.
	hdr.StreamSize = int(sh.PayloadSize) - ed25519SigSize - hdr.HeaderSize
	if hdr.StreamSize < 0 {
		return nil, fmt.Errorf("sealed package: inner package of %d bytes is shorter than its header: %w", sh.PayloadSize, delta.ErrFormat)
	}
	return &pkg{hdr: hdr, payload: payload, seal: sh}, nil
}

// checkPayload authenticates every encrypted chunk, the last one (and its
// final-chunk flag) included: the decoder may stop before the inner
// package's end.
func checkPayload(p *pkg) error {
	if d, ok := p.payload.(*seal.Decrypter); ok {
		return d.CheckAll()
	}
	return nil
}

// Verify checks the signature of patch (a delta or a sealed package)
// against the flash's trusted key and opens it, a sealed one with
// opts.DeviceKey, without writing the flash. It returns the delta header
// and the installer RAM the package needs (Need, plus a sealed package's
// chunk). Stage checks all of this again, and more.
func Verify(f *Flash, patch []byte, opts Options) (*delta.Header, int, error) {
	l, err := LayoutFor(f.Geometry())
	if err != nil {
		return nil, 0, err
	}
	rec, _, err := readBootRecord(f, l)
	if err != nil {
		return nil, 0, err
	}
	var iobuf [ioBufSize]byte
	p, err := verifyPackage(patch, rec.TrustedKey, opts, newArena(headerPrefix+seal.ChunkRAM(1<<seal.MaxChunkLog)), iobuf[:])
	if err != nil {
		return nil, 0, err
	}
	return p.hdr, p.ram(), nil
}
