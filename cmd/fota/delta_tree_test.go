package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/tree"
)

// The tree form of fota delta end to end in one process: make, info, apply
// to a new directory, apply in place cut by a power failure (exit status 3)
// then resumed, and a wrong old tree refused.
func TestDeltaTreeCommands(t *testing.T) {
	dir := t.TempDir()
	put := func(root, name, content string, mode os.FileMode) {
		p := filepath.Join(dir, root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	body := strings.Repeat("<svg viewBox=\"0 0 24 24\"><path d=\"M12 4L4 12\"/></svg>\n", 40)
	put("old", "svg/a.svg", body, 0o644)
	put("old", "svg/b.svg", body+"b", 0o644)
	put("old", "meta.json", `{"icons":["a","b"]}`, 0o644)
	put("new", "svg/a.svg", body, 0o644)
	put("new", "icons/b.svg", body+"b", 0o644) // moved
	put("new", "svg/c.svg", body+"c", 0o755)   // added
	put("new", "meta.json", `{"icons":["a","b","c"]}`, 0o644)
	old, nw := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	keyPath, pkg := filepath.Join(dir, "key"), filepath.Join(dir, "t.pkg")
	if err := runDelta([]string{"make", "--tree", old, nw, "-o", pkg, "--key", keyPath}); err != nil {
		t.Fatal(err)
	}
	key, err := delta.LoadOrCreateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pub := hex.EncodeToString(key.Public().(ed25519.PublicKey))
	if err := runDelta([]string{"info", pkg}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := runDelta([]string{"apply", "--tree", old, pkg, "-o", out, "--pubkey", pub}); err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) bool {
		ma, err := tree.Scan(a)
		if err != nil {
			t.Fatal(err)
		}
		mb, err := tree.Scan(b)
		if err != nil {
			t.Fatal(err)
		}
		return ma.Root() == mb.Root()
	}
	if !same(out, nw) {
		t.Fatal("apply -o did not write the new tree")
	}
	err = runDelta([]string{"apply", "--tree", old, pkg, "--in-place", "--cut-after", "3", "--pubkey", pub})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 {
		t.Fatalf("apply --in-place --cut-after 3: %v, want exit status 3", err)
	}
	if err := runDelta([]string{"apply", "--tree", old, pkg, "--in-place", "--pubkey", pub}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !same(old, nw) {
		t.Fatal("after a cut and a resume the tree is not the new tree")
	}
	// old is now the new tree: a package for another tree is refused by name
	put("other", "x", "x", 0o644)
	other := filepath.Join(dir, "other")
	pkg2 := filepath.Join(dir, "t2.pkg")
	if err := runDelta([]string{"make", "--tree", other, nw, "-o", pkg2, "--key", keyPath}); err != nil {
		t.Fatal(err)
	}
	err = runDelta([]string{"apply", "--tree", out, pkg2, "-o", filepath.Join(dir, "out2"), "--pubkey", pub})
	if !errors.Is(err, tree.ErrOldTree) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("a package for another tree: %v", err)
	}
}
