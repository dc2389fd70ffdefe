// Package app is the signed application package of Software Management
// (LwM2M object 9): what a device downloads to install, update or remove
// one application. It names the application and its version (the device
// reports them in /9/x/0 and /9/x/1, which the server cannot write), says
// what the payload is (the application's bytes, or a file-tree delta of
// package delta/tree to apply to the application's directory) and carries
// the payload's SHA-256 and an Ed25519 signature, so the device verifies
// the whole package, streaming, before it changes anything it installed.
//
// Layout (integers unsigned varints):
//
//	"FOTAAPP" version(1) kind(1)
//	nameLen name versionLen version
//	payloadLen payloadSHA256[32]
//	payload
//	signature[64]   Ed25519 over sigDomain + SHA-256 of every byte before it
package app

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	magic         = "FOTAAPP"
	formatVersion = 1
	sigDomain     = "fota app package v1\x00"
	// MaxName bounds the name and the version: LwM2M gives /9/x/0 and
	// /9/x/1 0..255 bytes.
	MaxName = 255
	// maxHeader is the longest header: magic, version, kind, two names
	// with their lengths, a payload length and the hash.
	maxHeader = len(magic) + 2 + 2*(2+MaxName) + binary.MaxVarintLen64 + 32
)

// Kinds of payload.
const (
	// KindBlob: the payload is the application itself, installed as is.
	KindBlob = 0
	// KindTree: the payload is a delta/tree package that turns the
	// application's installed directory into the new version's.
	KindTree = 1
)

// Errors callers branch on.
var (
	ErrCorrupt   = errors.New("application package corrupt")
	ErrIntegrity = errors.New("application package payload does not match its SHA-256")
	ErrSignature = errors.New("application package signature does not verify")
)

// Header is what a package says of itself.
type Header struct {
	Kind          byte
	Name, Version string
	PayloadOff    int64
	PayloadLen    int64
	PayloadSHA256 [32]byte
	Size          int64 // the whole package, signature included
}

// Make writes the package of payload (payloadLen bytes) to w, signed with
// key. The payload is read once, streaming: the caller passes its SHA-256
// (a repository has it already).
func Make(w io.Writer, kind byte, name, version string, payload io.Reader, payloadLen int64, payloadSHA256 [32]byte, key ed25519.PrivateKey) error {
	if name == "" || len(name) > MaxName || len(version) > MaxName {
		return fmt.Errorf("app package: name %q and version %q must be 1..%d and 0..%d bytes", name, version, MaxName, MaxName)
	}
	if kind != KindBlob && kind != KindTree {
		return fmt.Errorf("app package: unknown kind %d", kind)
	}
	h := sha256.New()
	hw := io.MultiWriter(w, h)
	hdr := EncodeHeader(kind, name, version, payloadLen, payloadSHA256)
	if _, err := hw.Write(hdr); err != nil {
		return err
	}
	n, err := io.Copy(hw, payload)
	if err != nil {
		return fmt.Errorf("app package: read payload: %w", err)
	}
	if n != payloadLen {
		return fmt.Errorf("app package: payload has %d bytes, said %d", n, payloadLen)
	}
	_, err = w.Write(Sign(key, h.Sum(nil)))
	return err
}

// EncodeHeader is the header Make writes before the payload: a server
// that serves the package by range from a stored payload needs only it
// and the signature.
func EncodeHeader(kind byte, name, version string, payloadLen int64, payloadSHA256 [32]byte) []byte {
	hdr := append([]byte(magic), formatVersion, kind)
	hdr = binary.AppendUvarint(hdr, uint64(len(name)))
	hdr = append(hdr, name...)
	hdr = binary.AppendUvarint(hdr, uint64(len(version)))
	hdr = append(hdr, version...)
	hdr = binary.AppendUvarint(hdr, uint64(payloadLen))
	return append(hdr, payloadSHA256[:]...)
}

// Sign is the package's signature given digest, the SHA-256 of the header
// and the payload.
func Sign(key ed25519.PrivateKey, digest []byte) []byte {
	return ed25519.Sign(key, append([]byte(sigDomain), digest...))
}

// SignWith is Sign with any Ed25519 crypto.Signer, such as a key held in an
// HSM (delta/signer): the server's repository signs through it.
func SignWith(s crypto.Signer, digest []byte) ([]byte, error) {
	return s.Sign(rand.Reader, append([]byte(sigDomain), digest...), crypto.Hash(0))
}

// Size is the length of the package Make writes.
func Size(name, version string, payloadLen int64) int64 {
	n := len(magic) + 2 + uvLen(uint64(len(name))) + len(name) + uvLen(uint64(len(version))) + len(version) +
		uvLen(uint64(payloadLen)) + 32
	return int64(n) + payloadLen + ed25519.SignatureSize
}

func uvLen(v uint64) int { return len(binary.AppendUvarint(nil, v)) }

// Parse reads the header of the size-byte package r and checks that its
// parts fit; it reads no more than the header.
func Parse(r io.ReaderAt, size int64) (*Header, error) {
	buf := make([]byte, min(int64(maxHeader), size))
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read app package header: %w", err)
	}
	if !bytes.HasPrefix(buf, []byte(magic)) {
		return nil, fmt.Errorf("%w: not an application package (no %q magic)", ErrCorrupt, magic)
	}
	b := buf[len(magic):]
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: header cut short", ErrCorrupt)
	}
	if b[0] != formatVersion {
		return nil, fmt.Errorf("%w: format version %d, this device reads %d", ErrCorrupt, b[0], formatVersion)
	}
	h := &Header{Kind: b[1], Size: size}
	if h.Kind != KindBlob && h.Kind != KindTree {
		return nil, fmt.Errorf("%w: unknown payload kind %d", ErrCorrupt, h.Kind)
	}
	b = b[2:]
	str := func(what string) (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > MaxName || uint64(len(b)-k) < n {
			return "", fmt.Errorf("%w: bad %s", ErrCorrupt, what)
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	var err error
	if h.Name, err = str("name"); err != nil {
		return nil, err
	}
	if h.Name == "" {
		return nil, fmt.Errorf("%w: empty name", ErrCorrupt)
	}
	if h.Version, err = str("version"); err != nil {
		return nil, err
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || len(b)-k < 32 {
		return nil, fmt.Errorf("%w: bad payload length", ErrCorrupt)
	}
	copy(h.PayloadSHA256[:], b[k:k+32])
	h.PayloadOff = int64(len(buf) - len(b) + k + 32)
	if n > uint64(size) || h.PayloadOff+int64(n)+ed25519.SignatureSize != size {
		return nil, fmt.Errorf("%w: a %d-byte payload does not fit a %d-byte package", ErrCorrupt, n, size)
	}
	h.PayloadLen = int64(n)
	return h, nil
}

// Verify parses the package and reads it once, through a bounded buffer:
// the payload must match its SHA-256 and, when pub is not nil, the
// signature must verify with pub.
func Verify(r io.ReaderAt, size int64, pub ed25519.PublicKey) (*Header, error) {
	h, err := Parse(r, size)
	if err != nil {
		return nil, err
	}
	all, payload := sha256.New(), sha256.New()
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size-ed25519.SignatureSize), 4096)
	if _, err := io.CopyN(all, br, h.PayloadOff); err != nil {
		return nil, fmt.Errorf("read app package: %w", err)
	}
	if _, err := io.Copy(io.MultiWriter(all, payload), br); err != nil {
		return nil, fmt.Errorf("read app package: %w", err)
	}
	if !bytes.Equal(payload.Sum(nil), h.PayloadSHA256[:]) {
		return nil, ErrIntegrity
	}
	if pub != nil {
		sig := make([]byte, ed25519.SignatureSize)
		if _, err := r.ReadAt(sig, size-ed25519.SignatureSize); err != nil {
			return nil, fmt.Errorf("read app package signature: %w", err)
		}
		if !ed25519.Verify(pub, append([]byte(sigDomain), all.Sum(nil)...), sig) {
			return nil, fmt.Errorf("%w: signed by another key or changed after signing", ErrSignature)
		}
	}
	return h, nil
}
