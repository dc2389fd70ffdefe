package signer_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/seal"
	"github.com/fotastack/fota/delta/signer"
	"github.com/fotastack/fota/delta/signer/softhsmtest"
	"github.com/fotastack/fota/inplace"
)

func images() (old, new []byte) {
	old = make([]byte, 48<<10)
	for i := range old {
		old[i] = byte(i/7) ^ byte(i*i>>9)
	}
	new = append(bytes.Clone(old[:20000]), []byte("a new function, inserted")...)
	new = append(new, old[20000:]...)
	for i := 30000; i < len(new); i += 997 {
		new[i]++
	}
	return old, new
}

// TestPKCS11SignSealAndInstall keeps the package signing key in SoftHSM2:
// the key pair is generated in a token made by the test, a delta package
// and a sealed (encrypted, key-announcing) package are signed through
// PKCS#11, verified with the token's public key and installed on a device
// that trusts it.
func TestPKCS11SignSealAndInstall(t *testing.T) {
	module := softhsmtest.Token(t, "fota-test", "4711")
	pin := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pin, []byte("4711\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uri := "pkcs11:token=fota-test;object=package-signing?module-path=" + module + "&pin-source=file:" + pin
	s, err := signer.Generate(uri)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signer.PublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signer.Generate(uri); !errors.Is(err, signer.ErrKeyExists) {
		t.Fatalf("second key under the same label: %v", err)
	}
	s.Close()
	// Opened again, by a URI whose PIN comes from the environment.
	t.Setenv("FOTA_PKCS11_PIN", "4711")
	s, err = signer.Open("pkcs11:token=fota-test;object=package-signing?module-path=" + module)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := signer.PublicKey(s); !got.Equal(pub) {
		t.Fatal("the reopened key has another public key")
	}

	old, new := images()
	opts := delta.Options{InPlace: true, EraseBlock: 4096, RAM: inplace.DefaultDecoderRAM - seal.ChunkRAM(seal.DefaultChunkSize),
		DeviceType: "hsm-meter", Version: "2.0.0", SeqNo: 2}
	pkg, err := delta.MakeSigned(old, new, opts, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := delta.Verify(pkg, pub); err != nil {
		t.Fatalf("the HSM-signed package does not verify with the token's public key: %v", err)
	}
	if out, err := delta.Apply(old, pkg, pub); err != nil || !bytes.Equal(out, new) {
		t.Fatalf("apply: %v", err)
	}

	dev, err := seal.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	next, _, _ := ed25519.GenerateKey(nil)
	sealed, err := seal.Seal(pkg, seal.Options{Signer: s, To: []*ecdh.PublicKey{dev.PublicKey()}, NewKey: next})
	if err != nil {
		t.Fatal(err)
	}
	f, err := inplace.NewFlash(inplace.Geometry{Size: 256 << 10, EraseBlock: 4096, PageSize: 256}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := (inplace.Provision{Image: old, Version: "1.0.0", DeviceType: "hsm-meter", TrustedKey: pub, SeqNo: 1}).Write(f); err != nil {
		t.Fatal(err)
	}
	if _, err := inplace.Install(f, sealed, inplace.Options{DeviceKey: dev}); err != nil {
		t.Fatalf("install the HSM-signed sealed package: %v", err)
	}
	img, rec, err := inplace.Image(f)
	if err != nil || !bytes.Equal(img, new) || !rec.TrustedKey.Equal(next) {
		t.Fatalf("after install: %v, new image %v, trusts the announced key %v", err, bytes.Equal(img, new), rec.TrustedKey.Equal(next))
	}
}

// TestPKCS11Refusals: an absent module, token or key, a wrong PIN and a
// PIN in the URI are each refused with what to do.
func TestPKCS11Refusals(t *testing.T) {
	module := softhsmtest.Token(t, "fota-test", "4711")
	t.Setenv("FOTA_PKCS11_PIN", "4711")
	base := "pkcs11:token=fota-test;object=k?module-path=" + module
	s, err := signer.Generate(base)
	if err != nil {
		t.Fatal(err)
	}
	// Closed, so that the token is locked again: while a key of this
	// process holds it open, PKCS#11 keeps it logged in for the process.
	s.Close()
	for _, c := range []struct {
		name, uri, pin string
		want           error
		says           string
	}{
		{"wrong PIN", base, "1111", signer.ErrLocked, "wrong PIN"},
		{"absent module", "pkcs11:token=fota-test;object=k?module-path=/nonexistent/libpkcs11.so", "4711", signer.ErrNoModule, "apt-get install softhsm2"},
		{"absent token", "pkcs11:token=other;object=k?module-path=" + module, "4711", signer.ErrNoToken, `"fota-test"`},
		{"absent key", "pkcs11:token=fota-test;object=nokey?module-path=" + module, "4711", signer.ErrNoKey, "nokey"},
		{"PIN in the URI", base + "&pin-value=4711", "4711", signer.ErrURI, "pin-source"},
		{"no PIN", base, "", signer.ErrNoPIN, "FOTA_PKCS11_PIN"},
		{"no token label", "pkcs11:object=k?module-path=" + module, "4711", signer.ErrURI, "token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.pin == "" {
				os.Unsetenv("FOTA_PKCS11_PIN")
				defer os.Setenv("FOTA_PKCS11_PIN", "4711")
			} else {
				t.Setenv("FOTA_PKCS11_PIN", c.pin)
			}
			k, err := signer.Open(c.uri)
			if err == nil {
				k.Close()
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want %v saying %q", err, c.want, c.says)
			}
			if strings.Contains(err.Error(), "4711") && c.name != "PIN in the URI" {
				t.Fatalf("the error shows the PIN: %v", err)
			}
			t.Logf("refused: %v", err)
		})
	}
	// After the refusals the right PIN opens the key, and it signs.
	s, err = signer.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := []byte("still here")
	sig, err := s.Sign(nil, msg, nil)
	pub, _ := signer.PublicKey(s)
	if err != nil || !ed25519.Verify(pub, msg, sig) {
		t.Fatalf("sign after refusals: %v", err)
	}
}
