package seal

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to everything a device runs on a sealed
// package before trusting it: the header reader, the signature check, the
// recipient walk and the chunk decrypter (also without the signature, so
// that mutations reach the decrypter). Nothing may panic, read past the
// package or return plaintext from a chunk that fails authentication.
func FuzzOpen(f *testing.F) {
	dev := deviceKey(f, 3)
	other := deviceKey(f, 4)
	for _, o := range []Options{
		{},
		{NewKey: nextKey.Public().(ed25519.PublicKey)},
		{To: []*ecdh.PublicKey{dev.PublicKey()}, ChunkSize: 512},
		{To: []*ecdh.PublicKey{other.PublicKey(), dev.PublicKey()}, ChunkSize: 512, NewKey: nextKey.Public().(ed25519.PublicKey)},
	} {
		o.Signer = signKey
		s, err := Seal(payload(1300), o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	pub := signKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := ReadHeader(r, int64(len(data)))
		if err != nil {
			return
		}
		if h.PayloadOff+h.PayloadWireSize()+SigSize != int64(len(data)) {
			t.Fatalf("header accepted with lengths that do not add up: %+v for %d bytes", h, len(data))
		}
		verr := Verify(r, h.Size, pub, make([]byte, 100))
		cek, err := FindKey(r, h, dev)
		if err != nil {
			return
		}
		p, err := Payload(r, h, cek, make([]byte, h.RAM()))
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, h.PayloadSize)
		n, err := p.ReadAt(out, 0)
		if err != nil && !errors.Is(err, ErrDecrypt) && !(err == io.EOF && int64(n) == h.PayloadSize) {
			t.Fatalf("read payload: %v", err)
		}
		if verr == nil && err == nil && !bytes.Equal(out, payload(1300)) && h.Encrypted {
			t.Fatal("a package that verifies and decrypts gives another payload")
		}
	})
}
