package delta

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultKeyPath is where the signing key lives: $FOTA_SIGNING_KEY if set,
// else $XDG_CONFIG_HOME/fota/signing.key (~/.config/fota/signing.key).
func DefaultKeyPath() string {
	if p := os.Getenv("FOTA_SIGNING_KEY"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "fota", "signing.key")
}

// LoadOrCreateKey reads the Ed25519 private key at path (the 64-byte
// private key, seed then public key, in hex), creating a new one there (mode 0600, directory 0700) when the
// file does not exist.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create key directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create signing key: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(priv) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("write signing key %s: %w", path, werr)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	return ParsePrivateKey(b)
}

// ParsePrivateKey reads a key file's contents: the 64-byte Ed25519 private
// key as hex (a bare 32-byte seed is accepted too).
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("signing key is not hex: %w", err)
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(raw), nil
	}
	return nil, fmt.Errorf("signing key is %d bytes, want %d (seed) or %d", len(raw), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// ParsePublicKey reads a public key given as hex, or as the path of a file
// holding it in hex (a private key file is accepted too: its public half is
// used).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || (len(raw) != ed25519.PublicKeySize) {
		b, ferr := os.ReadFile(s)
		if ferr != nil {
			return nil, fmt.Errorf("public key %q is neither 32 bytes of hex nor a readable file: %w", s, ferr)
		}
		raw, err = hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("public key file %s is not hex: %w", s, err)
		}
	}
	if len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	if len(raw) == ed25519.PrivateKeySize {
		return ed25519.PrivateKey(raw).Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf("public key is %d bytes, want %d", len(raw), ed25519.PublicKeySize)
}

// Sign replaces the signature of the package pkg with one made by s: an
// Ed25519 crypto.Signer, the key of a file or of an HSM (delta/signer). It
// checks the new signature with s's public key before returning.
func Sign(pkg []byte, s crypto.Signer) ([]byte, error) {
	if len(pkg) < sigSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrFormat, len(pkg))
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("delta: signing key is %T, want Ed25519", s.Public())
	}
	body := pkg[:len(pkg)-sigSize]
	sig, err := s.Sign(rand.Reader, body, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("delta: sign: %w", err)
	}
	if len(sig) != sigSize || !ed25519.Verify(pub, body, sig) {
		return nil, fmt.Errorf("delta: the signing key's signature does not verify with its own public key")
	}
	return append(append([]byte(nil), body...), sig...), nil
}

// MakeSigned is Make with the package signed by s (see Sign): a file key
// signs directly; any other signer (an HSM) signs the finished package,
// which Make signed first with a one-time key.
func MakeSigned(old, new []byte, opts Options, s crypto.Signer) ([]byte, error) {
	if k, ok := s.(ed25519.PrivateKey); ok {
		opts.Key = k
		return Make(old, new, opts)
	}
	_, tmp, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	opts.Key = tmp
	pkg, err := Make(old, new, opts)
	if err != nil {
		return nil, err
	}
	return Sign(pkg, s)
}
