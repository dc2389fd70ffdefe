package main

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/tree"
)

const deltaTreeUsage = `usage:
  fota delta make --tree OLD_DIR NEW_DIR -o PKG [--key FILE]
  fota delta apply --tree OLD_DIR PKG -o OUT_DIR [--pubkey HEX|FILE]
  fota delta apply --tree DIR PKG --in-place [--cut-after N] [--pubkey HEX|FILE]
  fota delta info PKG
  fota delta bench --tree DIR`

// isTreeCommand tells the tree form of a delta command: --tree anywhere, or
// info on a file that starts with the tree package magic.
func isTreeCommand(args []string) bool {
	for _, a := range args {
		if a == "--tree" || a == "-tree" {
			return true
		}
	}
	if len(args) == 2 && args[0] == "info" {
		f, err := os.Open(args[1])
		if err != nil {
			return false
		}
		defer f.Close()
		b := make([]byte, 8)
		n, _ := f.Read(b)
		return tree.IsTreePackage(b[:n])
	}
	return false
}

func runDeltaTree(args []string) error {
	switch args[0] {
	case "make":
		return treeMake(args[1:])
	case "apply":
		return treeApply(args[1:])
	case "info":
		return treeInfo(args[1:])
	case "bench":
		return treeBench(args[1:])
	}
	return &exitError{2, fmt.Errorf("unknown delta command %q\n%s", args[0], deltaTreeUsage)}
}

func treeFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Bool("tree", true, "the arguments are directory trees")
	return fs
}

func treeMake(args []string) error {
	fs := treeFlags("delta make --tree")
	out := fs.String("o", "", "output package")
	keyPath := fs.String("key", "", "signing key file (default "+delta.DefaultKeyPath()+")")
	pos, err := parseInterleaved(fs, args, 2)
	if err != nil {
		return err
	}
	if *out == "" {
		return &exitError{2, errors.New("delta make --tree: -o PKG is required\n" + deltaTreeUsage)}
	}
	if *keyPath == "" {
		*keyPath = delta.DefaultKeyPath()
	}
	key, err := delta.LoadOrCreateKey(*keyPath)
	if err != nil {
		return err
	}
	start := time.Now()
	pkg, err := tree.Make(pos[0], pos[1], key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, pkg, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, made in %v\n", *out, len(pkg), time.Since(start).Round(time.Millisecond))
	return nil
}

func treeApply(args []string) error {
	fs := treeFlags("delta apply --tree")
	out := fs.String("o", "", "output directory for the new tree")
	inPlace := fs.Bool("in-place", false, "update the tree itself, journaled so that a power cut leaves the old or the new tree")
	cutAfter := fs.Int("cut-after", 0, "with --in-place: cut power after N file-system operations (exit status 3)")
	pub := fs.String("pubkey", "", "verifying public key, hex or file (default: the default signing key's)")
	pos, err := parseInterleaved(fs, args, 2)
	if err != nil {
		return err
	}
	if (*out == "") == !*inPlace {
		return &exitError{2, errors.New("delta apply --tree: give either -o OUT_DIR or --in-place\n" + deltaTreeUsage)}
	}
	pk, err := publicKey(*pub)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[1])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !*inPlace {
		return tree.Apply(pos[0], f, st.Size(), pk, *out)
	}
	res, err := tree.ApplyInPlace(pos[0], f, st.Size(), pk, tree.Options{CutAfter: *cutAfter})
	if errors.Is(err, tree.ErrPowerCut) {
		return &exitError{3, err}
	}
	if err != nil {
		return err
	}
	switch {
	case res.AlreadyApplied:
		fmt.Printf("%s is already the new tree\n", pos[0])
	case res.Resumed:
		fmt.Printf("%s: resumed and finished the update (%d operations)\n", pos[0], res.Ops)
	default:
		fmt.Printf("%s: updated in place (%d operations)\n", pos[0], res.Ops)
	}
	return nil
}

func treeInfo(args []string) error {
	fs := treeFlags("delta info")
	pos, err := parseInterleaved(fs, args, 1)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h, err := tree.Parse(f, st.Size())
	if err != nil {
		return err
	}
	s := h.Summary()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "package\t%d bytes (index %d, data %d, signature 64): file tree\n", h.Size, h.IndexLen, h.DataLen)
	fmt.Fprintf(w, "old tree\t%x\n", h.OldRoot)
	fmt.Fprintf(w, "new tree\t%x\n", h.NewRoot)
	fmt.Fprintf(w, "removed\t%d paths\n", s.Removed)
	fmt.Fprintf(w, "added\t%d files, %d bytes\n", s.Added, s.AddedBytes)
	fmt.Fprintf(w, "renamed or copied\t%d files (%d renamed or moved; found by content hash), %d bytes\n", s.Copied, s.Renamed, s.CopiedBytes)
	fmt.Fprintf(w, "changed\t%d files, %d bytes (%d by a patch against the old file)\n", s.Changed, s.ChangedBytes, s.Patched)
	fmt.Fprintf(w, "directories\t%d created or changed mode\n", s.Dirs)
	fmt.Fprintf(w, "symlinks\t%d\n", s.Symlinks)
	return w.Flush()
}

// treePairs are the pairs of ../shared/trees (SOURCES.txt) the bench runs.
var treePairs = [][2]string{
	{"mdi-svg-7.3.67", "mdi-svg-7.4.47"},
	{"fontsource-inter-5.2.8", "fontsource-inter-5.3.0"},
	{"fontsource-inter-5.1.1", "fontsource-inter-5.2.8"},
}

// treeBench makes and applies a package per pair and prints its size next
// to xdelta3 and zstd --patch-from on the tars (tar --sort=name, as the
// acceptance check makes them), and the apply's memory: the zstd window and
// dictionary the data frame needs, and the Go heap's peak during Apply.
func treeBench(args []string) error {
	fs := treeFlags("delta bench --tree")
	pos, err := parseInterleaved(fs, args, 1)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fota-tree-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	_, key, _ := ed25519.GenerateKey(nil)
	pub := key.Public().(ed25519.PublicKey)
	unpack := func(name string) (string, string, error) {
		d := filepath.Join(tmp, name)
		if _, err := os.Stat(d); err == nil {
			return filepath.Join(d, "package"), d + ".tar", nil
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", err
		}
		if out, err := exec.Command("tar", "-xzf", filepath.Join(pos[0], name+".tgz"), "-C", d).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("unpack %s: %v %s", name, err, out)
		}
		if out, err := exec.Command("tar", "--sort=name", "-cf", d+".tar", "-C", d, "package").CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("tar %s: %v %s", name, err, out)
		}
		return filepath.Join(d, "package"), d + ".tar", nil
	}
	tool := func(name string, args ...string) string {
		out := filepath.Join(tmp, "tool.out")
		os.Remove(out)
		if _, err := exec.LookPath(name); err != nil {
			return "not installed"
		}
		if o, err := exec.Command(name, append(args, out)...).CombinedOutput(); err != nil {
			return fmt.Sprintf("failed: %v %s", err, o)
		}
		st, err := os.Stat(out)
		if err != nil {
			return err.Error()
		}
		return strconv.FormatInt(st.Size(), 10)
	}
	fmt.Println("| pair | new tar | ours | zstd -19 --long=27 --patch-from | xdelta3 -9 -S lzma | make | apply | data frame window + dictionary | Go heap peak in Apply |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, p := range treePairs {
		oldDir, oldTar, err := unpack(p[0])
		if err != nil {
			return err
		}
		newDir, newTar, err := unpack(p[1])
		if err != nil {
			return err
		}
		t0 := time.Now()
		pkg, err := tree.Make(oldDir, newDir, key)
		if err != nil {
			return fmt.Errorf("%s -> %s: %w", p[0], p[1], err)
		}
		mk := time.Since(t0)
		out := filepath.Join(tmp, "out")
		os.RemoveAll(out)
		t0 = time.Now()
		peak, err := heapPeak(func() error { return tree.Apply(oldDir, bytes.NewReader(pkg), int64(len(pkg)), pub, out) })
		if err != nil {
			return fmt.Errorf("%s -> %s: apply: %w", p[0], p[1], err)
		}
		ap := time.Since(t0)
		h, err := tree.Parse(bytes.NewReader(pkg), int64(len(pkg)))
		if err != nil {
			return err
		}
		oldM, err := tree.Scan(oldDir)
		if err != nil {
			return err
		}
		win, dict, err := h.Memory(bytes.NewReader(pkg), oldM)
		if err != nil {
			return err
		}
		st, _ := os.Stat(newTar)
		z := tool("zstd", "-q", "-f", "-19", "--long=27", "--patch-from="+oldTar, newTar, "-o")
		x := tool("xdelta3", "-9", "-S", "lzma", "-e", "-f", "-s", oldTar, newTar)
		fmt.Printf("| %s -> %s | %d | %d | %s | %s | %v | %v | %d + %d | %d |\n", p[0], p[1], st.Size(), len(pkg), z, x,
			mk.Round(time.Millisecond), ap.Round(time.Millisecond), win, dict, peak)
	}
	return nil
}

// heapPeak runs f and samples the Go heap in use every millisecond: the peak
// above what was in use before, a measure of the apply's RAM (it includes
// the manifests and what garbage Go has not yet collected, kept small by a
// low GC target while f runs, so it is an upper bound).
func heapPeak(f func() error) (uint64, error) {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		p := base
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				sampled <- p
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				p = max(p, m.HeapInuse)
			}
		}
	}()
	err := f()
	close(done)
	peak = max(peak, <-sampled)
	return peak - base, err
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and checks their number.
func parseInterleaved(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &exitError{2, fmt.Errorf("%w\n%s", err, deltaTreeUsage)}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != want {
		return nil, &exitError{2, fmt.Errorf("want %d arguments, got %d\n%s", want, len(pos), deltaTreeUsage)}
	}
	return pos, nil
}
