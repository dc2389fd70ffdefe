package seal

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	magic         = "FOTS"
	formatVersion = 1

	flagEncrypted = 1 << 0
	flagNewKey    = 1 << 1
	knownFlags    = flagEncrypted | flagNewKey

	// SigSize is the length of the trailing signature.
	SigSize = ed25519.SignatureSize
	// MinChunkLog and MaxChunkLog bound the chunk size (512 B to 16 KiB):
	// the installer holds one chunk and its tag in RAM.
	MinChunkLog = 9
	MaxChunkLog = 14
	// DefaultChunkSize is 1 KiB: 1.6% of tag overhead on the air against
	// 1 KiB + 16 of installer RAM.
	DefaultChunkSize = 1 << 10
	// MaxRecipients bounds the recipient list (56 bytes each); a larger
	// group shares a group key.
	MaxRecipients = 1024
	// MaxPayload bounds the inner package.
	MaxPayload = 80 << 20

	keyIDSize     = 8
	cekSize       = 32
	tagSize       = 16
	wrappedSize   = cekSize + tagSize
	recipientSize = keyIDSize + wrappedSize
	sigDomain     = "fota seal v1\x00"
)

// Errors callers branch on.
var (
	ErrFormat       = errors.New("seal: malformed sealed package")
	ErrSignature    = errors.New("seal: signature does not verify with the trusted signing key")
	ErrNotRecipient = errors.New("seal: package is encrypted for other devices")
	ErrNoDeviceKey  = errors.New("seal: package is encrypted and this device has no decryption key")
	ErrDecrypt      = errors.New("seal: encrypted chunk fails authentication")
)

// IsSealed reports whether b starts like a sealed package (FOTS), as
// opposed to a bare delta package (FOTD).
func IsSealed(b []byte) bool { return len(b) >= 4 && string(b[:4]) == magic }

// Header is a sealed package's parsed header. It holds no recipient list:
// the device walks it on flash (FindKey), so a group of a thousand costs
// it no RAM.
type Header struct {
	Encrypted   bool
	ChunkSize   int               // plaintext bytes per chunk (encrypted only)
	PayloadSize int64             // the inner package's length
	NewKey      ed25519.PublicKey // the announced next signing key, or nil
	Ephemeral   [32]byte          // the sender's X25519 public key (encrypted only)
	Recipients  int
	// RecipientsOff, PayloadOff and Size are byte offsets in the package:
	// the recipient list, the payload, and the whole package's length
	// (signature included).
	RecipientsOff, PayloadOff, Size int64
	// HeaderHash is the SHA-256 of bytes [0, PayloadOff): the chunks' AAD.
	HeaderHash [32]byte
}

// Chunks is the number of encrypted chunks (0 for a plain payload).
func (h *Header) Chunks() int64 {
	if !h.Encrypted {
		return 0
	}
	c := int64(h.ChunkSize)
	return (h.PayloadSize + c - 1) / c
}

// PayloadWireSize is the payload's length in the package: P, or P plus a
// tag per chunk.
func (h *Header) PayloadWireSize() int64 {
	return h.PayloadSize + h.Chunks()*tagSize
}

// RAM is the installer memory opening the payload takes besides the
// decoder: one chunk and its tag (0 for a plain payload).
func (h *Header) RAM() int {
	if !h.Encrypted {
		return 0
	}
	return h.ChunkSize + tagSize
}

// ReadHeader parses the header of the size-byte sealed package r with
// fixed buffers: the fields, then the recipient list streamed through the
// header hash. It checks structure and lengths, not the signature
// (Verify does).
func ReadHeader(r io.ReaderAt, size int64) (*Header, error) {
	var pre [7 + binary.MaxVarintLen64 + 32 + 32 + binary.MaxVarintLen64]byte
	if size < 8+SigSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than any sealed package", ErrFormat, size)
	}
	n := int(min(int64(len(pre)), size-SigSize))
	if _, err := r.ReadAt(pre[:n], 0); err != nil {
		return nil, fmt.Errorf("seal: read header: %w", err)
	}
	b := pre[:n]
	if string(b[:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrFormat, b[:4])
	}
	if b[4] != formatVersion {
		return nil, fmt.Errorf("%w: version %d, this reader knows %d", ErrFormat, b[4], formatVersion)
	}
	flags := b[5]
	if flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrFormat, flags)
	}
	h := &Header{Encrypted: flags&flagEncrypted != 0, Size: size}
	clog := int(b[6])
	switch {
	case h.Encrypted && (clog < MinChunkLog || clog > MaxChunkLog):
		return nil, fmt.Errorf("%w: chunk size 2^%d outside 2^%d..2^%d", ErrFormat, clog, MinChunkLog, MaxChunkLog)
	case !h.Encrypted && clog != 0:
		return nil, fmt.Errorf("%w: chunk size on a payload that is not encrypted", ErrFormat)
	}
	if h.Encrypted {
		h.ChunkSize = 1 << clog
	}
	off := 7
	v, k := binary.Uvarint(b[off:])
	if k <= 0 || v == 0 || v > MaxPayload {
		return nil, fmt.Errorf("%w: payload length at byte %d: want 1..%d", ErrFormat, off, MaxPayload)
	}
	h.PayloadSize = int64(v)
	off += k
	take := func(what string, n int) ([]byte, error) {
		if off+n > len(b) {
			return nil, fmt.Errorf("%w: %s at byte %d: truncated", ErrFormat, what, off)
		}
		s := b[off : off+n]
		off += n
		return s, nil
	}
	if flags&flagNewKey != 0 {
		s, err := take("new signing key", ed25519.PublicKeySize)
		if err != nil {
			return nil, err
		}
		h.NewKey = ed25519.PublicKey(append([]byte(nil), s...))
	}
	if h.Encrypted {
		s, err := take("ephemeral key", 32)
		if err != nil {
			return nil, err
		}
		copy(h.Ephemeral[:], s)
		v, k := binary.Uvarint(b[off:])
		if k <= 0 || v == 0 || v > MaxRecipients {
			return nil, fmt.Errorf("%w: recipient count at byte %d: want 1..%d", ErrFormat, off, MaxRecipients)
		}
		h.Recipients = int(v)
		off += k
	}
	h.RecipientsOff = int64(off)
	h.PayloadOff = h.RecipientsOff + int64(h.Recipients)*recipientSize
	if want := h.PayloadOff + h.PayloadWireSize() + SigSize; want != size {
		return nil, fmt.Errorf("%w: header says %d bytes, package has %d", ErrFormat, want, size)
	}
	d := sha256.New()
	d.Write(b[:off])
	var rb [recipientSize]byte
	for i := 0; i < h.Recipients; i++ {
		if _, err := r.ReadAt(rb[:], h.RecipientsOff+int64(i)*recipientSize); err != nil {
			return nil, fmt.Errorf("seal: read recipient %d: %w", i, err)
		}
		d.Write(rb[:])
	}
	d.Sum(h.HeaderHash[:0])
	return h, nil
}

// Verify checks the signature of the size-byte sealed package r with pub,
// hashing it in one pass through buf (any length > 0; nil takes 256
// bytes).
func Verify(r io.ReaderAt, size int64, pub ed25519.PublicKey, buf []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("seal: trusted key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if size < SigSize {
		return fmt.Errorf("%w: %d bytes", ErrFormat, size)
	}
	if len(buf) == 0 {
		buf = make([]byte, 256)
	}
	d := sha256.New()
	body := size - SigSize
	for off := int64(0); off < body; {
		c := buf[:min(int64(len(buf)), body-off)]
		if _, err := r.ReadAt(c, off); err != nil {
			return fmt.Errorf("seal: read at %d: %w", off, err)
		}
		d.Write(c)
		off += int64(len(c))
	}
	var sig [SigSize]byte
	if _, err := r.ReadAt(sig[:], body); err != nil {
		return fmt.Errorf("seal: read signature: %w", err)
	}
	if !ed25519.Verify(pub, signedMessage(d.Sum(nil)), sig[:]) {
		return ErrSignature
	}
	return nil
}

func signedMessage(digest []byte) []byte {
	return append([]byte(sigDomain), digest...)
}

// ChunkRAM is the installer memory an encrypted package of chunkSize-byte
// chunks takes besides the decoder (Header.RAM): a packager takes it off
// the decoder's budget (delta.Options.RAM) so the sum fits the device.
func ChunkRAM(chunkSize int) int { return chunkSize + tagSize }
