// Package softhsmtest gives tests a fresh SoftHSM2 token: a PKCS#11 HSM in
// a temporary directory, initialised by the test, with nothing shared with
// other tests or the machine's own tokens.
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Modules are where Debian and other distributions put SoftHSM2's PKCS#11
// library.
var Modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
}

// Token initialises a token labelled label with the user PIN pin in a
// temporary directory (SOFTHSM2_CONF points there for the rest of the
// test) and returns the module's path. Without SoftHSM2 the test is
// skipped, naming the package to install, or fails when
// FOTA_INTEROP_REQUIRED=1 (CI installs it).
func Token(t testing.TB, label, pin string) (module string) {
	t.Helper()
	for _, m := range Modules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	util, err := exec.LookPath("softhsm2-util")
	if module == "" || err != nil {
		msg := "SoftHSM2 is not installed (its PKCS#11 module and softhsm2-util): apt-get install softhsm2"
		if os.Getenv("FOTA_INTEROP_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", pin+"-so").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return module
}
