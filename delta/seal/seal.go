package seal

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Options say how Seal wraps a package.
type Options struct {
	// Signer signs the sealed package: an Ed25519 key, from a file or an
	// HSM (delta/signer). Its public key is the one devices trust now.
	Signer crypto.Signer
	// To encrypts the package to these X25519 public keys (devices, or a
	// group key its devices share); none leaves it in clear.
	To []*ecdh.PublicKey
	// NewKey announces the next signing key: a device that installs this
	// package trusts NewKey, and only NewKey, from then on.
	NewKey ed25519.PublicKey
	// ChunkSize is the encrypted chunk size, a power of two from 512 to
	// 16 KiB (0: DefaultChunkSize).
	ChunkSize int
}

// Seal wraps the package pkg (normally a delta package) as opts says and
// signs the result.
func Seal(pkg []byte, opts Options) ([]byte, error) {
	if len(pkg) == 0 || len(pkg) > MaxPayload {
		return nil, fmt.Errorf("seal: package of %d bytes, want 1..%d", len(pkg), MaxPayload)
	}
	if opts.Signer == nil {
		return nil, fmt.Errorf("seal: no signing key")
	}
	signPub, ok := opts.Signer.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("seal: the signing key is %T, want an Ed25519 key", opts.Signer.Public())
	}
	if len(opts.To) > MaxRecipients {
		return nil, fmt.Errorf("seal: %d recipients, at most %d: give a larger group one shared group key", len(opts.To), MaxRecipients)
	}
	if opts.NewKey != nil && len(opts.NewKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("seal: new signing key is %d bytes, want %d", len(opts.NewKey), ed25519.PublicKeySize)
	}
	cs := opts.ChunkSize
	if cs == 0 {
		cs = DefaultChunkSize
	}
	clog := bits.Len(uint(cs)) - 1
	if cs != 1<<clog || clog < MinChunkLog || clog > MaxChunkLog {
		return nil, fmt.Errorf("seal: chunk size %d is not a power of two from %d to %d", cs, 1<<MinChunkLog, 1<<MaxChunkLog)
	}
	var flags byte
	if len(opts.To) > 0 {
		flags |= flagEncrypted
	} else {
		clog = 0
	}
	if opts.NewKey != nil {
		flags |= flagNewKey
	}
	out := append([]byte(magic), formatVersion, flags, byte(clog))
	out = binary.AppendUvarint(out, uint64(len(pkg)))
	out = append(out, opts.NewKey...)
	if len(opts.To) == 0 {
		out = append(out, pkg...)
		return sign(out, opts.Signer, signPub)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal: ephemeral key: %w", err)
	}
	cek := make([]byte, cekSize)
	if _, err := rand.Read(cek); err != nil {
		return nil, err
	}
	out = append(out, eph.PublicKey().Bytes()...)
	out = binary.AppendUvarint(out, uint64(len(opts.To)))
	for i, to := range opts.To {
		if to == nil || to.Curve() != ecdh.X25519() {
			return nil, fmt.Errorf("seal: recipient %d is not an X25519 key", i)
		}
		id := KeyID(to)
		kek, err := wrapKey(eph, to, eph.PublicKey(), to)
		if err != nil {
			return nil, fmt.Errorf("seal: recipient %d: %w", i, err)
		}
		out = append(out, id[:]...)
		out = kek.Seal(out, make([]byte, kek.NonceSize()), cek, id[:])
	}
	aad := sha256.Sum256(out)
	aead, err := newGCM(cek)
	if err != nil {
		return nil, err
	}
	for i, off := int64(0), 0; off < len(pkg); i, off = i+1, off+cs {
		end := min(off+cs, len(pkg))
		out = aead.Seal(out, chunkNonce(i, end == len(pkg)), pkg[off:end], aad[:])
	}
	return sign(out, opts.Signer, signPub)
}

// sign appends the signature over body's digest and checks it with the
// signer's public key, so that a token that signs with another key than
// it names is caught here, not on ten thousand devices.
func sign(body []byte, s crypto.Signer, pub ed25519.PublicKey) ([]byte, error) {
	d := sha256.Sum256(body)
	msg := signedMessage(d[:])
	sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("seal: sign: %w", err)
	}
	if len(sig) != SigSize || !ed25519.Verify(pub, msg, sig) {
		return nil, fmt.Errorf("seal: the signing key's signature does not verify with its own public key")
	}
	return append(body, sig...), nil
}

// wrapKey is the AEAD that wraps the content key for one recipient:
// AES-256-GCM under HKDF-SHA256 of the X25519 shared secret, salted with
// both public keys.
func wrapKey(priv *ecdh.PrivateKey, peer, eph, dev *ecdh.PublicKey) (cipher.AEAD, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("X25519: %w", err)
	}
	salt := append(eph.Bytes(), dev.Bytes()...)
	kek, err := hkdf.Key(sha256.New, shared, salt, "fota seal v1 key wrap", 32)
	if err != nil {
		return nil, err
	}
	return newGCM(kek)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// chunkNonce is chunk i's nonce: the index, and a last-chunk flag so that a
// package cut after any chunk fails (the STREAM construction).
func chunkNonce(i int64, last bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n, uint64(i))
	if last {
		n[11] = 1
	}
	return n
}
