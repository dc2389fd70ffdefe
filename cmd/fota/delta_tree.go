package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
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

func treeBench(args []string) error { return errors.New("delta bench --tree: not yet") }
