// Package signer opens the key that signs packages: a key file (the
// default, delta.LoadOrCreateKey) or an Ed25519 key in an HSM or token
// reached through PKCS#11, named by an RFC 7512 URI:
//
//	pkcs11:token=fota;object=signing?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/fota/pin
//
// The PIN comes from the file pin-source names or from $FOTA_PKCS11_PIN,
// never from the URI or the command line (pin-value is refused), so it
// shows in no process listing; module-path may come from
// $FOTA_PKCS11_MODULE. The private key never leaves the token: the
// signer hands it the message (pure Ed25519, CKM_EDDSA).
package signer

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/fotastack/fota/delta"
)

// Errors of opening an HSM key, each with what to do in its message.
var (
	ErrNoModule  = errors.New("PKCS#11 module cannot be loaded")
	ErrNoToken   = errors.New("no PKCS#11 token with that label")
	ErrLocked    = errors.New("PKCS#11 token refused the PIN")
	ErrNoKey     = errors.New("no Ed25519 key with that label in the token")
	ErrNoPIN     = errors.New("no PIN for the PKCS#11 token: set FOTA_PKCS11_PIN or pin-source=file:PATH in the URI")
	ErrURI       = errors.New("bad PKCS#11 URI")
	ErrKeyExists = errors.New("the token already holds a key with that label")
)

// Signer is a package signing key: crypto.Signer over Ed25519 (pure, the
// message itself, crypto.Hash(0)), and Close to let go of the token.
type Signer interface {
	crypto.Signer
	Close() error
}

// IsPKCS11 reports whether spec names an HSM key rather than a key file.
func IsPKCS11(spec string) bool { return strings.HasPrefix(spec, "pkcs11:") }

// Open opens the signing key spec names: a pkcs11: URI, or the path of a
// key file (made when it does not exist, as delta.LoadOrCreateKey does).
func Open(spec string) (Signer, error) {
	if IsPKCS11(spec) {
		u, err := ParseURI(spec)
		if err != nil {
			return nil, err
		}
		return openPKCS11(u)
	}
	k, err := delta.LoadOrCreateKey(spec)
	if err != nil {
		return nil, err
	}
	return FileKey{k}, nil
}

// Generate makes a new Ed25519 key pair in the token the URI names, under
// its object label, the private half not extractable, and returns it
// opened. A label already in use is refused (ErrKeyExists).
func Generate(spec string) (Signer, error) {
	u, err := ParseURI(spec)
	if err != nil {
		return nil, err
	}
	return generatePKCS11(u)
}

// FileKey is a signing key read from a file.
type FileKey struct{ ed25519.PrivateKey }

// Close does nothing: the key is in memory.
func (FileKey) Close() error { return nil }

// PublicKey is the Ed25519 public half of any signer.
func PublicKey(s crypto.Signer) (ed25519.PublicKey, error) {
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("signing key is %T, want Ed25519", s.Public())
	}
	return pub, nil
}

// Unwrap gives the file key itself when s is one (so that delta.MakeSigned
// signs in one pass), else s.
func Unwrap(s crypto.Signer) crypto.Signer {
	if f, ok := s.(FileKey); ok {
		return f.PrivateKey
	}
	return s
}

// readPIN takes the PIN from pin-source (a file) or $FOTA_PKCS11_PIN.
func readPIN(u *URI) (string, error) {
	if u.PINSource != "" {
		path := strings.TrimPrefix(u.PINSource, "file:")
		path = strings.TrimPrefix(path, "//")
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("PKCS#11 pin-source: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if p, ok := os.LookupEnv("FOTA_PKCS11_PIN"); ok {
		return p, nil
	}
	return "", ErrNoPIN
}
