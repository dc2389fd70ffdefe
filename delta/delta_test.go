package delta

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
)

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
var testPub = testKey.Public().(ed25519.PublicKey)

const firmwareDir = "../../shared/firmware"

// quick is true when the slow cases are left out: with -short, and under
// the race detector (which the full runs without it cover).
func quick() bool { return testing.Short() || raceEnabled }

type pair struct {
	name     string
	old, new []byte
}

// firmwarePairs loads the shared real firmware pairs, skipping the test
// when the shared folder is absent.
func firmwarePairs(t testing.TB) []pair {
	t.Helper()
	dirs, err := os.ReadDir(firmwareDir)
	if err != nil {
		t.Skipf("shared firmware pairs not found at %s (a checkout outside the project?): %v", firmwareDir, err)
	}
	var ps []pair
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		o, err1 := os.ReadFile(filepath.Join(firmwareDir, d.Name(), "old.bin"))
		n, err2 := os.ReadFile(filepath.Join(firmwareDir, d.Name(), "new.bin"))
		if err1 != nil || err2 != nil {
			continue
		}
		ps = append(ps, pair{d.Name(), o, n})
	}
	if len(ps) == 0 {
		t.Skipf("no old.bin/new.bin pairs under %s", firmwareDir)
	}
	return ps
}

// detoolsInPlace are detools' in-place lzma sizes on the shared pairs (issue
// 5), which our in-place packages must beat.
var detoolsInPlace = map[string]int{
	"upy-esp8266-1.9.4_1.10": 79813,
	"upy-pybv11-oneline":     9928,
	"esp32-app-v1_v2":        12410,
	"nrf52-s140-6.1.1_7.3.0": 41543,
}

// TestFirmwarePairsRoundTrip makes sequential and in-place packages for
// the shared real firmware pairs, applies them and checks the in-place size
// against detools and the arena against the RAM budget.
func TestFirmwarePairsRoundTrip(t *testing.T) {
	for _, p := range firmwarePairs(t) {
		if quick() && p.name != "nrf52-s140-6.1.1_7.3.0" {
			continue // the smallest pair only, in short mode and under -race
		}
		for _, inPlace := range []bool{false, true} {
			pkg, err := Make(p.old, p.new, Options{InPlace: inPlace, Key: testKey})
			if err != nil {
				t.Fatalf("%s: Make: %v", p.name, err)
			}
			got, err := Apply(p.old, pkg, testPub)
			if err != nil {
				t.Fatalf("%s in-place=%v: Apply: %v", p.name, inPlace, err)
			}
			if !bytes.Equal(got, p.new) {
				t.Fatalf("%s in-place=%v: Apply output differs from new", p.name, inPlace)
			}
			h, _ := Parse(pkg)
			t.Logf("%s in-place=%v: %d bytes (lc=%d window=%d words=%v desc=%v arena %d)", p.name, inPlace, len(pkg), h.LitCtxBits, h.LitWindow, h.WordDiffs, h.Descending, h.RAMBudget)
			if lim, ok := detoolsInPlace[p.name]; ok && inPlace && len(pkg) >= lim {
				t.Errorf("%s: in-place package of %d bytes, not below detools' in-place lzma (%d)", p.name, len(pkg), lim)
			}
			if h.RAMBudget > DefaultRAM {
				t.Errorf("%s: apply arena %d bytes, over the %d budget", p.name, h.RAMBudget, DefaultRAM)
			}
		}
	}
}
