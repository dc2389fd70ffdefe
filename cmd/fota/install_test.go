package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fotastack/fota/delta"
)

// The device subcommands end to end in one process: flash create, install
// cut by a power failure (exit status 3), boot resuming it, flash read.
func TestInstallCutBootReadCommands(t *testing.T) {
	dir := t.TempDir()
	old := bytes.Repeat([]byte("old firmware block "), 3000)
	new := append(bytes.Repeat([]byte("new firmware block "), 2000), old[:20000]...)
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	patch, err := delta.Make(old, new, delta.Options{InPlace: true, Key: key, Version: "2", DeviceType: "m"})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldPath, patchPath := write("old.bin", old), write("p", patch)
	fl, img := filepath.Join(dir, "dev.flash"), filepath.Join(dir, "img")
	pub := hex.EncodeToString(key.Public().(ed25519.PublicKey))
	if err := runFlash([]string{"create", "--size", "512K", "--image", oldPath, "-o", fl, "--device-type", "m", "--trust", pub}); err != nil {
		t.Fatal(err)
	}
	err = runInstall([]string{"--flash", fl, "--patch", patchPath, "--cut-after", "40", "--torn", "-q"})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 {
		t.Fatalf("install with a cut: %v, want exit status 3", err)
	}
	if err := runFlash([]string{"info", fl}); err != nil {
		t.Fatal(err)
	}
	if err := runBoot([]string{"--flash", fl}); err != nil {
		t.Fatal(err)
	}
	if err := runFlash([]string{"read", fl, "-o", img}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, new) {
		t.Fatal("image after cut and boot is not the new image")
	}
	// A package signed by another key is refused with an ordinary error.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, 32))
	bad, _ := delta.Make(new, old, delta.Options{InPlace: true, Key: other, DeviceType: "m"})
	err = runInstall([]string{"--flash", fl, "--patch", write("bad", bad), "-q"})
	if err == nil || errors.As(err, &ee) {
		t.Fatalf("badly signed package: %v", err)
	}
}
