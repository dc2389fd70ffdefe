package seal

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

var (
	signKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	nextKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
)

func deviceKey(t testing.TB, b byte) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i/300)
	}
	return p
}

// resign replaces the signature, as a holder of the signing key could:
// what the AEAD layer must catch on its own.
func resign(b []byte) []byte {
	body := b[:len(b)-SigSize]
	d := sha256.Sum256(body)
	return append(append([]byte(nil), body...), ed25519.Sign(signKey, signedMessage(d[:]))...)
}

func TestSealRoundTrip(t *testing.T) {
	a, b, c := deviceKey(t, 3), deviceKey(t, 4), deviceKey(t, 5)
	pub := signKey.Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name string
		n    int
		opts Options
		dev  *ecdh.PrivateKey
	}{
		{"plain", 5000, Options{}, nil},
		{"new key", 5000, Options{NewKey: nextKey.Public().(ed25519.PublicKey)}, nil},
		{"one device", 5000, Options{To: []*ecdh.PublicKey{a.PublicKey()}}, a},
		{"group, last member", 3 * 1024, Options{To: []*ecdh.PublicKey{a.PublicKey(), b.PublicKey(), c.PublicKey()}}, c},
		{"one byte", 1, Options{To: []*ecdh.PublicKey{a.PublicKey()}}, a},
		{"16 KiB chunks", 40000, Options{To: []*ecdh.PublicKey{b.PublicKey()}, ChunkSize: 16 << 10}, b},
		{"512-byte chunks and a new key", 40000, Options{To: []*ecdh.PublicKey{b.PublicKey()}, ChunkSize: 512, NewKey: nextKey.Public().(ed25519.PublicKey)}, b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := payload(tc.n)
			tc.opts.Signer = signKey
			s, err := Seal(in, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.opts.To) > 0 && bytes.Contains(s, in[:min(64, len(in))]) && len(in) >= 16 {
				t.Fatal("sealed package holds plaintext")
			}
			out, h, err := Open(s, pub, tc.dev)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in) {
				t.Fatal("payload differs after sealing and opening")
			}
			if !bytes.Equal(h.NewKey, tc.opts.NewKey) || h.Encrypted != (len(tc.opts.To) > 0) || h.Recipients != len(tc.opts.To) {
				t.Fatalf("header %+v does not say what was sealed", h)
			}
			// Random reads through a decrypter with one chunk of RAM.
			if h.Encrypted {
				cek, err := FindKey(bytes.NewReader(s), h, tc.dev)
				if err != nil {
					t.Fatal(err)
				}
				d, err := NewDecrypter(bytes.NewReader(s), h, cek, make([]byte, h.RAM()))
				if err != nil {
					t.Fatal(err)
				}
				for _, off := range []int{tc.n - 1, 0, tc.n / 2, max(0, tc.n-700)} {
					got := make([]byte, min(700, tc.n-off))
					if _, err := d.ReadAt(got, int64(off)); err != nil {
						t.Fatalf("read at %d: %v", off, err)
					}
					if !bytes.Equal(got, in[off:off+len(got)]) {
						t.Fatalf("read at %d differs", off)
					}
				}
			}
		})
	}
}

func TestSealRefusals(t *testing.T) {
	a, b := deviceKey(t, 3), deviceKey(t, 4)
	pub := signKey.Public().(ed25519.PublicKey)
	in := payload(5000)
	s, err := Seal(in, Options{Signer: signKey, To: []*ecdh.PublicKey{a.PublicKey()}, ChunkSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(bytes.NewReader(s), int64(len(s)))
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(i int) int { return int(h.PayloadOff) + i*(1024+tagSize) }
	flip := func(at int) []byte { c := bytes.Clone(s); c[at] ^= 1; return c }
	// The last chunk dropped, the length fixed: only the final flag tells.
	cut := bytes.Clone(s[:chunk(4)])
	cut[7] = 0
	n := binary.PutUvarint(cut[7:], 4096)
	if n != 2 { // 5000 and 4096 both take two varint bytes
		t.Fatal("test assumes a two-byte payload length")
	}
	cut = resign(append(cut, make([]byte, SigSize)...))
	// Chunks 1 and 2 swapped.
	swap := bytes.Clone(s)
	copy(swap[chunk(1):chunk(2)], s[chunk(2):chunk(3)])
	copy(swap[chunk(2):chunk(3)], s[chunk(1):chunk(2)])
	for _, tc := range []struct {
		name  string
		pkg   []byte
		trust ed25519.PublicKey
		dev   *ecdh.PrivateKey
		want  error
	}{
		{"another device", s, pub, b, ErrNotRecipient},
		{"no device key", s, pub, nil, ErrNoDeviceKey},
		{"another signer", s, nextKey.Public().(ed25519.PublicKey), a, ErrSignature},
		{"a ciphertext bit", flip(chunk(2) + 5), pub, a, ErrSignature},
		{"a recipient bit", flip(int(h.RecipientsOff) + 20), pub, a, ErrSignature},
		{"a ciphertext bit, re-signed", resign(flip(chunk(2) + 5)), pub, a, ErrDecrypt},
		{"a wrapped key bit, re-signed", resign(flip(int(h.RecipientsOff) + 20)), pub, a, ErrNotRecipient},
		{"truncated after a chunk, re-signed", cut, pub, a, ErrDecrypt},
		{"chunks swapped, re-signed", resign(swap), pub, a, ErrDecrypt},
		{"cut short", s[:len(s)-100], pub, a, ErrFormat},
		{"bad magic", append([]byte("FOTD"), s[4:]...), pub, a, ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Open(tc.pkg, tc.trust, tc.dev)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSealChecksItsSigner(t *testing.T) {
	if _, err := Seal(payload(10), Options{Signer: liar{signKey}}); err == nil {
		t.Fatal("a signer whose signature does not match its public key was not caught")
	}
	if _, err := Seal(payload(10), Options{Signer: signKey, ChunkSize: 1000}); err == nil {
		t.Fatal("chunk size 1000 accepted")
	}
}

// liar names one key and signs with another, as a misconfigured token might.
type liar struct{ ed25519.PrivateKey }

func (l liar) Public() crypto.PublicKey { return nextKey.Public() }

func TestDeviceKeyFiles(t *testing.T) {
	k, err := GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	b := MarshalDeviceKey(k)
	k2, err := ParseDeviceKey(b)
	if err != nil || !k2.Equal(k) {
		t.Fatalf("device key file does not read back: %v", err)
	}
	// A device key file given as a recipient yields its public half.
	dir := t.TempDir() + "/dev.key"
	if err := writeFile(dir, b); err != nil {
		t.Fatal(err)
	}
	p, err := ParseDevicePublicKey(dir)
	if err != nil || !p.Equal(k.PublicKey()) {
		t.Fatalf("public half of a key file: %v", err)
	}
	if _, err := ParseDevicePublicKey("abcd"); err == nil {
		t.Fatal("2 bytes of hex accepted as a key")
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }
