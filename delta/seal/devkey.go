package seal

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// privateMark opens a device key file, so that a private key given where
// a public one is expected is recognised (both are 32 bytes of hex).
const privateMark = "# fota device key (X25519 private): keep it on the device\n"

// GenerateDeviceKey makes a device's X25519 decryption key.
func GenerateDeviceKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(rand.Reader)
}

// MarshalDeviceKey is the file form of a device key.
func MarshalDeviceKey(k *ecdh.PrivateKey) []byte {
	return []byte(privateMark + hex.EncodeToString(k.Bytes()) + "\n")
}

// KeyID names a recipient in a sealed package: the first 8 bytes of the
// SHA-256 of its X25519 public key.
func KeyID(pub *ecdh.PublicKey) [keyIDSize]byte {
	s := sha256.Sum256(pub.Bytes())
	var id [keyIDSize]byte
	copy(id[:], s[:])
	return id
}

// ParseDeviceKey reads a device key file's contents (MarshalDeviceKey).
func ParseDeviceKey(b []byte) (*ecdh.PrivateKey, error) {
	raw, _, err := hexKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	return ecdh.X25519().NewPrivateKey(raw)
}

// LoadDeviceKey reads the device key file at path.
func LoadDeviceKey(path string) (*ecdh.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read device key: %w", err)
	}
	k, err := ParseDeviceKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseDevicePublicKey reads a recipient: its X25519 public key in hex, or
// a file holding it (a device key file gives its public half).
func ParseDevicePublicKey(s string) (*ecdh.PublicKey, error) {
	raw, private, err := hexKey(s)
	if err != nil {
		b, ferr := os.ReadFile(s)
		if ferr != nil {
			return nil, fmt.Errorf("device key %q is neither 32 bytes of hex nor a readable file: %w", s, ferr)
		}
		if raw, private, err = hexKey(string(b)); err != nil {
			return nil, fmt.Errorf("device key file %s: %w", s, err)
		}
	}
	if private {
		k, err := ecdh.X25519().NewPrivateKey(raw)
		if err != nil {
			return nil, err
		}
		return k.PublicKey(), nil
	}
	return ecdh.X25519().NewPublicKey(raw)
}

// hexKey reads 32 bytes of hex, skipping '#' comment lines; private says
// the text carried the private key mark.
func hexKey(s string) (raw []byte, private bool, err error) {
	var body strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			private = private || line+"\n" == privateMark
			continue
		}
		body.WriteString(line)
	}
	raw, err = hex.DecodeString(body.String())
	if err != nil {
		return nil, false, fmt.Errorf("not hex: %w", err)
	}
	if len(raw) != 32 {
		return nil, false, fmt.Errorf("%d bytes, want 32", len(raw))
	}
	return raw, private, nil
}
