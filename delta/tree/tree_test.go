package tree

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

func pub() ed25519.PublicKey { return testKey.Public().(ed25519.PublicKey) }

// spec describes a tree for writeTree: "f:path:mode:content", "d:path:mode",
// "l:path:target".
func writeTree(t testing.TB, dir string, spec []string) {
	t.Helper()
	for _, s := range spec {
		f := strings.SplitN(s, ":", 4)
		p := filepath.Join(dir, f[1])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch f[0] {
		case "f":
			err = os.WriteFile(p, []byte(f[3]), 0o644)
			if err == nil {
				err = os.Chmod(p, mode(f[2]))
			}
		case "d":
			err = os.MkdirAll(p, 0o755)
			if err == nil {
				err = os.Chmod(p, mode(f[2]))
			}
		case "l":
			err = os.Symlink(f[2], p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func mode(s string) os.FileMode {
	var m os.FileMode
	for _, c := range s {
		m = m<<3 | os.FileMode(c-'0')
	}
	return m
}

func randomText(seed int64, n int) string {
	r := rand.New(rand.NewSource(seed))
	words := []string{"path", "d=", "M12", "L4", "svg", "viewBox", "0", "24", "fill", "icon", "{", "}", "\n"}
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words[r.Intn(len(words))])
		b.WriteByte(' ')
	}
	return b.String()
}

// synthetic is an old and a new tree that exercise every kind of change:
// a rename, a move to a new directory, a changed file, a mode change,
// a retargeted and a new symlink, empty directories added and removed, a
// directory removed with its content, a file that becomes a directory and a
// directory that becomes a file, a directory's mode change.
func synthetic(t testing.TB) (oldDir, newDir string) {
	big := randomText(1, 20000)
	oldDir, newDir = t.TempDir(), t.TempDir()
	writeTree(t, oldDir, []string{
		"f:a.txt:644:" + big,
		"f:dir/b.bin:644:" + randomText(2, 5000),
		"f:dir/keep.txt:644:unchanged",
		"f:script.sh:755:#!/bin/sh\necho hi\n",
		"l:link:a.txt",
		"l:stays:dir/keep.txt",
		"d:empty:755",
		"f:deep/x/y.txt:644:gone with its directory",
		"f:k:644:a file that becomes a directory",
		"f:m/inside.txt:644:a directory that becomes a file",
		"d:ro:755",
		"f:ro/r.txt:600:private",
	})
	writeTree(t, newDir, []string{
		"f:a.txt:644:" + strings.Replace(big, "svg", "SVG", 3),
		"f:moved/b-renamed.bin:644:" + randomText(2, 5000),
		"f:dir/keep.txt:644:unchanged",
		"f:script.sh:644:#!/bin/sh\necho hi\n",
		"l:link:dir/keep.txt",
		"l:stays:dir/keep.txt",
		"l:newlink:moved/b-renamed.bin",
		"d:empty2/inner:700",
		"f:k/z.txt:644:now inside k",
		"f:m:644:now a file",
		"f:ro/r.txt:600:private",
		"f:added.txt:644:" + randomText(3, 3000),
	})
	if err := os.Chmod(filepath.Join(newDir, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	return oldDir, newDir
}

func mustScan(t testing.TB, dir string) Manifest {
	t.Helper()
	m, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func makePkg(t testing.TB, oldDir, newDir string) []byte {
	t.Helper()
	pkg, err := Make(oldDir, newDir, testKey)
	if err != nil {
		t.Fatal(err)
	}
	return pkg
}

// copyTree copies with cp -a, which keeps modes and symlinks.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "t")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	return dst
}

func applyOut(t testing.TB, oldDir string, pkg []byte) (string, error) {
	out := filepath.Join(t.TempDir(), "out")
	return out, Apply(oldDir, bytes.NewReader(pkg), int64(len(pkg)), pub(), out)
}

func TestSyntheticTreeRoundTripsEveryKindOfChange(t *testing.T) {
	oldDir, newDir := synthetic(t)
	pkg := makePkg(t, oldDir, newDir)
	want := mustScan(t, newDir).Root()

	out, err := applyOut(t, oldDir, pkg)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustScan(t, out); got.Root() != want {
		t.Fatalf("applied tree differs from the new tree:\n%v\nwant\n%v", got, mustScan(t, newDir))
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", out, newDir).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%s", err, out)
	}

	dev := copyTree(t, oldDir)
	res, err := ApplyInPlace(dev, bytes.NewReader(pkg), int64(len(pkg)), pub(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if mustScan(t, dev).Root() != want {
		t.Fatal("in-place apply did not give the new tree")
	}
	if _, err := os.Lstat(filepath.Join(dev, JournalDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal left behind after a finished apply: %v", err)
	}
	again, err := ApplyInPlace(dev, bytes.NewReader(pkg), int64(len(pkg)), pub(), Options{})
	if err != nil || !again.AlreadyApplied {
		t.Fatalf("a second apply: %+v %v, want already applied", again, err)
	}
	t.Logf("%d bytes, %d operations in place", len(pkg), res.Ops)

	h, err := Parse(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	s := h.Summary()
	// b.bin -> moved/b-renamed.bin is a rename found by content; script.sh a mode-only copy
	if s.Renamed != 1 || s.Copied != 2 || s.Symlinks != 2 || s.Changed != 1 || s.Added != 3 || s.Removed != 8 {
		t.Fatalf("summary %+v: want 1 rename, 2 copies, 2 symlinks, 1 changed (a.txt), 3 added (added.txt, k/z.txt, m: a directory before), 8 removed", s)
	}
}

func treePair(t *testing.T, a, b string) (string, string) {
	t.Helper()
	src := filepath.Join("..", "..", "..", "shared", "trees")
	if _, err := os.Stat(filepath.Join(src, a+".tgz")); err != nil {
		t.Skipf("no %s (../shared/trees): the real asset trees are not on this machine", a)
	}
	dirs := make([]string, 2)
	for i, n := range []string{a, b} {
		d := t.TempDir()
		if err := untar(filepath.Join(src, n+".tgz"), d); err != nil {
			t.Fatal(err)
		}
		dirs[i] = filepath.Join(d, "package")
	}
	return dirs[0], dirs[1]
}

// The sizes zstd -19 --long=27 --patch-from gives on the tars of each pair
// (../shared/trees/SOURCES.txt): the target.
var realPairs = []struct {
	old, new string
	zstd     int
	slow     bool
}{
	{"mdi-svg-7.3.67", "mdi-svg-7.4.47", 11240, false},
	{"fontsource-inter-5.2.8", "fontsource-inter-5.3.0", 576, false},
	{"fontsource-inter-5.1.1", "fontsource-inter-5.2.8", 3568079, true},
}

func TestRealTreesRoundTripNoLargerThanZstdPatchFrom(t *testing.T) {
	_, cli := exec.LookPath("zstd")
	for _, p := range realPairs {
		t.Run(p.new, func(t *testing.T) {
			if p.slow && testing.Short() {
				t.Skip("-short: the font rebuild pair takes a while")
			}
			oldDir, newDir := treePair(t, p.old, p.new)
			pkg := makePkg(t, oldDir, newDir)
			out, err := applyOut(t, oldDir, pkg)
			if err != nil {
				t.Fatal(err)
			}
			if o, err := exec.Command("diff", "-r", out, newDir).CombinedOutput(); err != nil {
				t.Fatalf("diff -r: %v\n%.2000s", err, o)
			}
			t.Logf("%s -> %s: %d bytes, zstd --patch-from %d", p.old, p.new, len(pkg), p.zstd)
			// Without zstd(1) packages come from the Go encoder alone, which
			// has no optimal parser: a few percent larger.
			if cli == nil && len(pkg) > p.zstd {
				t.Fatalf("%d bytes, larger than zstd --patch-from's %d", len(pkg), p.zstd)
			}
		})
	}
}

func TestRealTreeInPlace(t *testing.T) {
	oldDir, newDir := treePair(t, "mdi-svg-7.3.67", "mdi-svg-7.4.47")
	pkg := makePkg(t, oldDir, newDir)
	if _, err := ApplyInPlace(oldDir, bytes.NewReader(pkg), int64(len(pkg)), pub(), Options{}); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command("diff", "-r", oldDir, newDir).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%.2000s", err, o)
	}
}

func TestWrongOldTreeIsRefusedWithNothingChanged(t *testing.T) {
	oldDir, newDir := synthetic(t)
	pkg := makePkg(t, oldDir, newDir)
	other := copyTree(t, oldDir)
	if err := os.WriteFile(filepath.Join(other, "dir", "keep.txt"), []byte("unchanged!"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := mustScan(t, other).Root()
	_, err := ApplyInPlace(other, bytes.NewReader(pkg), int64(len(pkg)), pub(), Options{})
	if !errors.Is(err, ErrOldTree) {
		t.Fatalf("got %v, want ErrOldTree", err)
	}
	if mustScan(t, other).Root() != before {
		t.Fatal("the tree changed although the package was refused")
	}
	if _, err := os.Lstat(filepath.Join(other, JournalDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a journal was created for a refused package")
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := Apply(other, bytes.NewReader(pkg), int64(len(pkg)), pub(), out); !errors.Is(err, ErrOldTree) {
		t.Fatalf("Apply: got %v, want ErrOldTree", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Apply created the output directory for a refused package")
	}
}

func TestBadSignatureIsRefusedWithNothingChanged(t *testing.T) {
	oldDir, newDir := synthetic(t)
	pkg := makePkg(t, oldDir, newDir)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged, err := Make(oldDir, newDir, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(pkg)
	flipped[len(flipped)/2] ^= 1
	for name, p := range map[string][]byte{"another key": forged, "a flipped byte": flipped} {
		dev := copyTree(t, oldDir)
		before := mustScan(t, dev).Root()
		_, err := ApplyInPlace(dev, bytes.NewReader(p), int64(len(p)), pub(), Options{})
		if !errors.Is(err, ErrSignature) {
			t.Errorf("%s: got %v, want ErrSignature", name, err)
		}
		if mustScan(t, dev).Root() != before {
			t.Errorf("%s: the tree changed", name)
		}
	}
}

// resign signs a changed body with the right key, as a faulty generator
// would: the checks after the signature must still hold.
func resign(pkg []byte) []byte {
	body := pkg[:len(pkg)-ed25519.SignatureSize]
	d := sha256Sum(body)
	return append(bytes.Clone(body), ed25519.Sign(testKey, append([]byte(sigDomain), d[:]...))...)
}

func TestCorruptPackageIsRefusedWithNothingChanged(t *testing.T) {
	oldDir, newDir := synthetic(t)
	pkg := makePkg(t, oldDir, newDir)
	h, err := Parse(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"truncated":         pkg[:len(pkg)/2],
		"data byte changed": resign(xorAt(pkg, int(h.DataOff+h.DataLen/2))),
		"last data byte":    resign(xorAt(pkg, int(h.DataOff+h.DataLen-1))),
		"index byte":        resign(xorAt(pkg, int(h.DataOff-2))),
		"new root":          resign(xorAt(pkg, len(magic)+1+32)),
		"version":           resign(xorAt(pkg, len(magic))),
	}
	for name, p := range cases {
		dev := copyTree(t, oldDir)
		before := mustScan(t, dev).Root()
		_, err := ApplyInPlace(dev, bytes.NewReader(p), int64(len(p)), pub(), Options{})
		if err == nil {
			t.Errorf("%s: applied", name)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewTree) && !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v does not say the package is corrupt", name, err)
		}
		if mustScan(t, dev).Root() != before {
			t.Errorf("%s: the tree changed (%v)", name, err)
		}
	}
}

func xorAt(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

// TestPowerCutAtEveryOperationEndsInOldOrNewTree cuts the power after each
// operation of an in-place apply in turn, checks the tree is then exactly the
// old one (before the commit record) or on its way with a journal, and that a
// resume (itself cut once more, then finished) gives exactly the new tree.
func TestPowerCutAtEveryOperationEndsInOldOrNewTree(t *testing.T) {
	oldDir, newDir := synthetic(t)
	pkg := makePkg(t, oldDir, newDir)
	oldRoot, newRoot := mustScan(t, oldDir).Root(), mustScan(t, newDir).Root()
	full, err := ApplyInPlace(copyTree(t, oldDir), bytes.NewReader(pkg), int64(len(pkg)), pub(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(dir string, cut int) (Result, error) {
		return ApplyInPlace(dir, bytes.NewReader(pkg), int64(len(pkg)), pub(), Options{CutAfter: cut})
	}
	oldSeen, midSeen := 0, 0
	for cut := 1; cut <= full.Ops; cut++ {
		dev := copyTree(t, oldDir)
		if _, err := apply(dev, cut); !errors.Is(err, ErrPowerCut) {
			t.Fatalf("cut %d: got %v, want a power cut", cut, err)
		}
		_, planErr := os.Stat(filepath.Join(dev, JournalDir, "plan"))
		switch root := mustScan(t, dev).Root(); {
		case planErr != nil && cut == full.Ops: // the last operation removes the journal
			if root != newRoot {
				t.Fatalf("cut %d after the journal's removal: the tree is not the new tree", cut)
			}
		case planErr != nil: // not committed: the old tree, exactly
			if root != oldRoot {
				t.Fatalf("cut %d before the commit record: the tree is not the old tree", cut)
			}
			oldSeen++
		default:
			midSeen++
		}
		// a second cut during the resume, then a resume that finishes
		if _, err := apply(dev, 1+cut%3); err != nil && !errors.Is(err, ErrPowerCut) {
			t.Fatalf("cut %d, resume cut: %v", cut, err)
		}
		if _, err := apply(dev, 0); err != nil {
			t.Fatalf("cut %d: resume: %v", cut, err)
		}
		if mustScan(t, dev).Root() != newRoot {
			t.Fatalf("cut %d: after resuming the tree is not the new tree", cut)
		}
	}
	if oldSeen == 0 || midSeen == 0 {
		t.Fatalf("cuts before the commit %d, after %d: want both", oldSeen, midSeen)
	}
	t.Logf("%d cut points (%d before the commit record, %d after): all resumed to the new tree", full.Ops, oldSeen, midSeen)
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func untar(tgz, dir string) error {
	if out, err := exec.Command("tar", "-xzf", tgz, "-C", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("unpack %s: %v %s", tgz, err, out)
	}
	return nil
}
