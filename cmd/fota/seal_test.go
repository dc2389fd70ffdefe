package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fotastack/fota/delta/seal"
	"github.com/fotastack/fota/delta/signer/softhsmtest"
	"github.com/fotastack/fota/inplace"
)

// sealImages writes an old and a new image into dir.
func sealImages(t *testing.T, dir string) (oldPath, newPath string, new []byte) {
	t.Helper()
	old := bytes.Repeat([]byte("old firmware block "), 3000)
	new = append(bytes.Repeat([]byte("new firmware block "), 2000), old[:20000]...)
	oldPath, newPath = filepath.Join(dir, "old.bin"), filepath.Join(dir, "new.bin")
	if err := os.WriteFile(oldPath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newPath, new, 0o644); err != nil {
		t.Fatal(err)
	}
	return oldPath, newPath, new
}

// flashContents is what the simulated chip holds (the file also keeps
// its clock and counters).
func flashContents(t *testing.T, path string) []byte {
	t.Helper()
	f, err := inplace.OpenFlash(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, f.Geometry().Size)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// An encrypted, key-announcing package through the commands: device keys
// made, the package made for one of them, refused on the other device
// (flash unchanged) and installed on its own; the next signing key is
// trusted after it.
func TestEncryptedPackageCommands(t *testing.T) {
	dir := t.TempDir()
	oldPath, newPath, new := sealImages(t, dir)
	key, next := filepath.Join(dir, "signing.key"), filepath.Join(dir, "next.key")
	devA, devB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	for _, k := range []string{devA, devB} {
		if err := deltaDeviceKey([]string{"-o", k}); err != nil {
			t.Fatal(err)
		}
	}
	if err := deltaDeviceKey([]string{"-o", devA}); err == nil {
		t.Fatal("device-key overwrote an existing key")
	}
	if fi, err := os.Stat(devA); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device key file mode: %v %v", fi.Mode(), err)
	}
	// The next signing key: a key file, made (and its public key printed)
	// by fota delta key.
	captureStdout(t, func() error { return deltaKey([]string{"--key", next}) })
	pkg := filepath.Join(dir, "p.fots")
	if err := deltaMake([]string{oldPath, newPath, "-o", pkg, "--in-place", "--key", key, "--version", "2", "--device-type", "m",
		"--encrypt-to", devA + ".pub", "--announce-key", next}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pkg)
	if !seal.IsSealed(b) || bytes.Contains(b, new[:64]) {
		t.Fatal("the package is not sealed, or holds plaintext")
	}
	if err := deltaInfo([]string{pkg}); err != nil {
		t.Fatal(err)
	}
	// delta apply on the host, with the device's key.
	out := filepath.Join(dir, "out.bin")
	if err := deltaApply([]string{oldPath, pkg, "-o", out, "--pubkey", key}); !errors.Is(err, seal.ErrNoDeviceKey) {
		t.Fatalf("apply without the device key: %v", err)
	}
	if err := deltaApply([]string{oldPath, pkg, "-o", out, "--pubkey", key, "--device-key", devA}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, new) {
		t.Fatal("delta apply of the sealed package")
	}
	for _, dev := range []string{"a", "b"} {
		fl := filepath.Join(dir, dev+".flash")
		if err := runFlash([]string{"create", "--size", "512K", "--image", oldPath, "-o", fl, "--device-type", "m", "--trust", key}); err != nil {
			t.Fatal(err)
		}
	}
	fb := filepath.Join(dir, "b.flash")
	before := flashContents(t, fb)
	err := runInstall([]string{"--flash", fb, "--patch", pkg, "--device-key", devB, "-q"})
	if !errors.Is(err, seal.ErrNotRecipient) || !strings.Contains(err.Error(), "not among") {
		t.Fatalf("install on another device: %v", err)
	}
	if after := flashContents(t, fb); !bytes.Equal(before, after) {
		t.Fatal("the refused package changed the other device's flash")
	}
	fa := filepath.Join(dir, "a.flash")
	if err := runInstall([]string{"--flash", fa, "--patch", pkg, "--device-key", devA, "-q"}); err != nil {
		t.Fatal(err)
	}
	if err := runBoot([]string{"--flash", fa, "--device-key", devA}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img")
	if err := runFlash([]string{"read", fa, "-o", img}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(img); !bytes.Equal(got, new) {
		t.Fatal("image after the encrypted install")
	}
	// The device now trusts the announced key only: a package signed by
	// the old one is refused, one by the new one installs.
	newer := filepath.Join(dir, "v3.bin")
	if err := os.WriteFile(newer, append(bytes.Clone(new), "v3"...), 0o644); err != nil {
		t.Fatal(err)
	}
	p3 := filepath.Join(dir, "p3")
	if err := deltaMake([]string{newPath, newer, "-o", p3, "--in-place", "--key", key, "--version", "3", "--device-type", "m"}); err != nil {
		t.Fatal(err)
	}
	if err := runInstall([]string{"--flash", fa, "--patch", p3, "-q"}); err == nil {
		t.Fatal("a package signed by the retired key installed")
	}
	if err := deltaMake([]string{newPath, newer, "-o", p3, "--in-place", "--key", next, "--version", "3", "--device-type", "m"}); err != nil {
		t.Fatal(err)
	}
	if err := runInstall([]string{"--flash", fa, "--patch", p3, "-q"}); err != nil {
		t.Fatalf("a package signed by the announced key: %v", err)
	}
}

// TestPKCS11DeltaMakeCommand signs a package with a key made in SoftHSM2
// by `fota delta key --generate`, and a device trusting that key installs
// it; a wrong PIN is refused with what to check.
func TestPKCS11DeltaMakeCommand(t *testing.T) {
	module := softhsmtest.Token(t, "fota-cli", "2468")
	t.Setenv("FOTA_PKCS11_PIN", "2468")
	dir := t.TempDir()
	oldPath, newPath, new := sealImages(t, dir)
	uri := "pkcs11:token=fota-cli;object=signing?module-path=" + module
	pubOut := captureStdout(t, func() error { return deltaKey([]string{"--generate", "--key", uri}) })
	pub := strings.TrimSpace(pubOut)
	if len(pub) != 64 {
		t.Fatalf("delta key --generate printed %q", pubOut)
	}
	if again := strings.TrimSpace(captureStdout(t, func() error { return deltaKey([]string{"--key", uri}) })); again != pub {
		t.Fatalf("delta key printed %q, then %q", pub, again)
	}
	pkg := filepath.Join(dir, "p")
	if err := deltaMake([]string{oldPath, newPath, "-o", pkg, "--in-place", "--key", uri, "--version", "2", "--device-type", "m"}); err != nil {
		t.Fatal(err)
	}
	fl := filepath.Join(dir, "dev.flash")
	if err := runFlash([]string{"create", "--size", "512K", "--image", oldPath, "-o", fl, "--device-type", "m", "--trust", pub}); err != nil {
		t.Fatal(err)
	}
	if err := runInstall([]string{"--flash", fl, "--patch", pkg, "-q"}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img")
	if err := runFlash([]string{"read", fl, "-o", img}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(img); !bytes.Equal(got, new) {
		t.Fatal("image after installing the HSM-signed package")
	}
	t.Setenv("FOTA_PKCS11_PIN", "0000")
	err := deltaMake([]string{oldPath, newPath, "-o", pkg, "--in-place", "--key", uri})
	if err == nil || !strings.Contains(err.Error(), "wrong PIN") || strings.Contains(err.Error(), "0000") {
		t.Fatalf("wrong PIN: %v", err)
	}
}
