package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDeltaBenchColumns runs `fota delta bench` (the built binary: it runs
// its own delta make as a child) on one small pair and checks the columns
// it promises: our three packages and every peer, each with a size, a time
// and a peak memory, or "not installed" (a failure when
// FOTA_INTEROP_REQUIRED=1, as CI runs, which installs them all), and the
// HDIFFZ.tsv column with the geometric mean.
func TestDeltaBenchColumns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs every delta tool")
	}
	dir := t.TempDir()
	pair := filepath.Join(dir, "pairs", "small")
	if err := os.MkdirAll(pair, 0o755); err != nil {
		t.Fatal(err)
	}
	// A 24 KiB image and a version of it with a moved and a changed region.
	rng := rand.New(rand.NewSource(1))
	old := make([]byte, 24<<10)
	for i := range old {
		old[i] = byte(rng.Intn(16)) // compressible, like code
	}
	nw := append(append(append([]byte{}, old[:4000]...), old[6000:20000]...), old[4000:6000]...)
	nw = append(nw, old[20000:]...)
	for i := 9000; i < 9400; i++ {
		nw[i] ^= byte(rng.Intn(256))
	}
	for name, b := range map[string][]byte{"old.bin": old, "new.bin": nw} {
		if err := os.WriteFile(filepath.Join(pair, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "pairs", "HDIFFZ.tsv"), []byte("# pair\tbytes\nsmall\t2000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "fota")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "delta", "bench", filepath.Join(dir, "pairs"))
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("delta bench: %v\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	if len(lines) < 3 {
		t.Fatalf("no table:\n%s", out)
	}
	cols := func(l string) []string {
		f := strings.Split(strings.Trim(l, "| "), " | ")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		return f
	}
	head, row := cols(lines[0]), cols(lines[2])
	if len(head) != len(row) {
		t.Fatalf("header has %d columns, the row %d:\n%s", len(head), len(row), out)
	}
	cell := map[string]string{}
	for i, h := range head {
		cell[h] = row[i]
	}
	measured := regexp.MustCompile(`^\d+ \(\d+\.\d\ds, \d+ MB\)$`)
	for _, c := range []string{"ours in-place", "ours in-place --fast", "ours sequential"} {
		if !measured.MatchString(cell[c]) {
			t.Errorf("column %q: %q, want size (time, memory)", c, cell[c])
		}
	}
	peers := []string{"xdelta3 -9 -S lzma", "zstd -19 --long=27 --patch-from", "bsdiff (bzip2)", "detools sequential lzma",
		"detools in-place lzma 4 KiB", "HDiffPatch lzma2-9-16m (PyPI hdiffpatch)"}
	for _, c := range peers {
		v, ok := cell[c]
		switch {
		case !ok:
			t.Errorf("no column %q in %q", c, lines[0])
		case v == "not installed" && os.Getenv("FOTA_INTEROP_REQUIRED") == "1":
			t.Errorf("%s not installed (.ci/run installs it: apt-get install xdelta3 zstd bsdiff; pip install detools hdiffpatch)", c)
		case v == "not installed":
			t.Logf("%s not installed; install it for its column (apt-get install xdelta3 zstd bsdiff; pip install detools hdiffpatch)", c)
		case !measured.MatchString(v):
			t.Errorf("column %q: %q, want size (time, memory)", c, v)
		}
	}
	if cell["HDiffPatch -SD lzma2 (HDIFFZ.tsv)"] != "2000" {
		t.Errorf("HDIFFZ.tsv column: %q, want 2000", cell["HDiffPatch -SD lzma2 (HDIFFZ.tsv)"])
	}
	var size int
	fmt.Sscan(cell["ours in-place"], &size)
	want := fmt.Sprintf("geometric mean over 1 pairs: %.3f", float64(size)/2000)
	if !strings.Contains(string(out), want) {
		t.Errorf("no %q in:\n%s", want, out)
	}
}
