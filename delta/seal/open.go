package seal

import (
	"bytes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/subtle"
	"fmt"
	"io"
)

// FindKey walks the recipient list of h on r for the device key priv and
// unwraps the content key. A package not encrypted to priv is refused with
// ErrNotRecipient, naming the device's key ID.
func FindKey(r io.ReaderAt, h *Header, priv *ecdh.PrivateKey) ([]byte, error) {
	if !h.Encrypted {
		return nil, nil
	}
	if priv == nil {
		return nil, ErrNoDeviceKey
	}
	if priv.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("seal: device key is not X25519")
	}
	id := KeyID(priv.PublicKey())
	eph, err := ecdh.X25519().NewPublicKey(h.Ephemeral[:])
	if err != nil {
		return nil, fmt.Errorf("%w: ephemeral key: %v", ErrFormat, err)
	}
	var rb [recipientSize]byte
	for i := 0; i < h.Recipients; i++ {
		if _, err := r.ReadAt(rb[:], h.RecipientsOff+int64(i)*recipientSize); err != nil {
			return nil, fmt.Errorf("seal: read recipient %d: %w", i, err)
		}
		if subtle.ConstantTimeCompare(rb[:keyIDSize], id[:]) != 1 {
			continue
		}
		kek, err := wrapKey(priv, eph, eph, priv.PublicKey())
		if err != nil {
			return nil, fmt.Errorf("seal: unwrap: %w", err)
		}
		// Another key may share the 8-byte ID: go on if it does not open.
		if cek, err := kek.Open(nil, make([]byte, kek.NonceSize()), rb[keyIDSize:], rb[:keyIDSize]); err == nil {
			return cek, nil
		}
	}
	return nil, fmt.Errorf("%w: this device's key ID %x is not among its %d recipients", ErrNotRecipient, id, h.Recipients)
}

// Payload returns the inner package of the sealed package r as a reader:
// the bytes themselves, or (encrypted) a Decrypter over them with the
// content key cek and the chunk buffer buf (at least h.RAM() bytes).
func Payload(r io.ReaderAt, h *Header, cek, buf []byte) (io.ReaderAt, error) {
	if !h.Encrypted {
		return io.NewSectionReader(r, h.PayloadOff, h.PayloadSize), nil
	}
	return NewDecrypter(r, h, cek, buf)
}

// Decrypter reads an encrypted payload's plaintext at any offset, one
// authenticated chunk at a time, through a buffer of one chunk and its tag.
// A chunk that fails authentication is an error, never returned bytes.
type Decrypter struct {
	r    io.ReaderAt
	h    *Header
	aead cipher.AEAD
	buf  []byte
	cur  int64 // index of the chunk in buf, -1 for none
	n    int   // its plaintext length
}

// NewDecrypter opens the payload of h on r with the content key cek.
func NewDecrypter(r io.ReaderAt, h *Header, cek, buf []byte) (*Decrypter, error) {
	if len(buf) < h.RAM() {
		return nil, fmt.Errorf("seal: chunk buffer of %d bytes, need %d", len(buf), h.RAM())
	}
	aead, err := newGCM(cek)
	if err != nil {
		return nil, fmt.Errorf("seal: content key: %w", err)
	}
	return &Decrypter{r: r, h: h, aead: aead, buf: buf[:h.RAM()], cur: -1}, nil
}

// load decrypts chunk i into the buffer.
func (d *Decrypter) load(i int64) error {
	if d.cur == i {
		return nil
	}
	d.cur = -1
	cs := int64(d.h.ChunkSize)
	n := int(min(cs, d.h.PayloadSize-i*cs))
	wire := d.buf[:n+tagSize]
	if _, err := d.r.ReadAt(wire, d.h.PayloadOff+i*(cs+tagSize)); err != nil {
		return fmt.Errorf("seal: read chunk %d: %w", i, err)
	}
	last := i == d.h.Chunks()-1
	if _, err := d.aead.Open(wire[:0], chunkNonce(i, last), wire, d.h.HeaderHash[:]); err != nil {
		return fmt.Errorf("%w: chunk %d of %d", ErrDecrypt, i, d.h.Chunks())
	}
	d.cur, d.n = i, n
	return nil
}

// ReadAt reads plaintext at off.
func (d *Decrypter) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("seal: read at negative offset %d", off)
	}
	cs := int64(d.h.ChunkSize)
	done := 0
	for done < len(p) {
		at := off + int64(done)
		if at >= d.h.PayloadSize {
			return done, io.EOF
		}
		if err := d.load(at / cs); err != nil {
			return done, err
		}
		done += copy(p[done:], d.buf[at%cs:d.n])
	}
	return done, nil
}

// CheckAll authenticates every chunk, the last one included, so that a
// package cut short or spliced is refused before anything is written.
func (d *Decrypter) CheckAll() error {
	for i := int64(0); i < d.h.Chunks(); i++ {
		if err := d.load(i); err != nil {
			return err
		}
	}
	return nil
}

// Open verifies the sealed package pkg with the trusted signing key and
// returns its header and the inner package, decrypted with the device key
// priv when it is encrypted (host side: it holds the whole package).
func Open(pkg []byte, trusted ed25519.PublicKey, priv *ecdh.PrivateKey) ([]byte, *Header, error) {
	r := bytes.NewReader(pkg)
	h, err := ReadHeader(r, int64(len(pkg)))
	if err != nil {
		return nil, nil, err
	}
	if err := Verify(r, h.Size, trusted, make([]byte, 32<<10)); err != nil {
		return nil, nil, err
	}
	cek, err := FindKey(r, h, priv)
	if err != nil {
		return nil, nil, err
	}
	p, err := Payload(r, h, cek, make([]byte, h.RAM()))
	if err != nil {
		return nil, nil, err
	}
	out := make([]byte, h.PayloadSize)
	if _, err := p.ReadAt(out, 0); err != nil {
		return nil, nil, err
	}
	return out, h, nil
}
