package tree

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// JournalDir is where ApplyInPlace stages new files and keeps its journal,
// inside the tree being updated so that a rename into place never crosses a
// file system.
const JournalDir = JournalPrefix + "-tree"

// ErrPowerCut is returned when Options.CutAfter operations have been done:
// the simulated power cut of the tests and of `fota delta apply --cut-after`.
var ErrPowerCut = errors.New("tree: power cut (simulated)")

// Options tune ApplyInPlace.
type Options struct {
	// CutAfter, if positive, stops after that many file-system operations
	// (a staged file, a journal record, a remove, a rename, a mkdir...) as a
	// power cut would, leaving everything as it is on disk.
	CutAfter int
}

// Result says what ApplyInPlace did.
type Result struct {
	Ops            int  // file-system operations this run
	Resumed        bool // a committed journal was found and finished
	AlreadyApplied bool // the tree was already the new tree
}

type counter struct {
	n, cut int
}

// step counts one durable operation and cuts the power after the chosen one.
func (c *counter) step() error {
	c.n++
	if c.cut > 0 && c.n >= c.cut {
		return fmt.Errorf("%w after %d operations", ErrPowerCut, c.n)
	}
	return nil
}

// The journal's plan: one operation per line, each idempotent, so redoing
// the last one after a cut (the "done" record lags it) is harmless.
const (
	opRemove = "rm"    // remove a file or symlink of the old tree (absent: done)
	opRmdir  = "rmdir" // remove an emptied old directory (absent: done)
	opMkdir  = "mkdir" // create a new directory (present: done)
	opMove   = "mv"    // rename staged file N into place (staged file gone: done)
	opChmod  = "chmod" // set a directory's mode, last so a read-only one is filled first
)

type op struct {
	verb string
	arg  string // staged file number for mv, mode in octal for chmod
	path string
}

// ApplyInPlace turns the tree at dir into the package's new tree.
//
// Before the commit record the tree itself is untouched: the package is
// verified (signature, then dir's manifest against the old tree's identity),
// every new file and symlink is written under dir/.fota-tree/staged and
// fsynced, and the plan is written and renamed into place as the commit
// record. After it the plan's operations run in order, each followed by a
// "done" record. A run that finds a plan resumes after the last done
// operation; one that finds only a partial staging area discards it and
// starts again. At the end the whole tree is checked against the new
// manifest before the journal is removed. So a power cut at any moment
// leaves, once ApplyInPlace is run again, the whole old tree (cut before the
// commit record, then refused or re-applied as asked) or the whole new tree.
func ApplyInPlace(dir string, r io.ReaderAt, size int64, pub ed25519.PublicKey, opt Options) (Result, error) {
	c := &counter{cut: opt.CutAfter}
	res, err := applyInPlace(dir, r, size, pub, c)
	res.Ops = c.n
	return res, err
}

func applyInPlace(dir string, r io.ReaderAt, size int64, pub ed25519.PublicKey, c *counter) (Result, error) {
	var res Result
	h, err := Verify(r, size, pub)
	if err != nil {
		return res, err
	}
	j := filepath.Join(dir, JournalDir)
	planPath := filepath.Join(j, "plan")
	ops, err := readPlan(planPath, h)
	switch {
	case err == nil:
		res.Resumed = true
	case errors.Is(err, fs.ErrNotExist):
		// No commit record: the tree is the old one; anything staged is
		// from a run cut before it committed, and is redone.
		if err := os.RemoveAll(j); err != nil {
			return res, fmt.Errorf("remove the unfinished staging area %s: %w", j, err)
		}
		oldM, err := Scan(dir)
		if err != nil {
			return res, err
		}
		if oldM.Root() == h.NewRoot {
			res.AlreadyApplied = true
			return res, nil
		}
		if err := h.checkOld(oldM, dir); err != nil {
			return res, err
		}
		if ops, err = stage(dir, j, h, r, oldM, c); err != nil {
			return res, err
		}
	default:
		return res, err
	}
	done := readDone(filepath.Join(j, "done"))
	for k := done; k < len(ops); k++ {
		if err := ops[k].run(dir, j); err != nil {
			return res, fmt.Errorf("in-place step %d of %d (%s %s): %w; run the apply again to resume", k+1, len(ops), ops[k].verb, ops[k].path, err)
		}
		if err := c.step(); err != nil {
			return res, err
		}
		if err := writeAtomic(filepath.Join(j, "done"), []byte(strconv.Itoa(k+1))); err != nil {
			return res, err
		}
		if err := c.step(); err != nil {
			return res, err
		}
	}
	if err := checkNew(dir, h); err != nil {
		return res, err
	}
	if err := os.RemoveAll(j); err != nil {
		return res, err
	}
	return res, c.step()
}

func stage(dir, j string, h *Header, r io.ReaderAt, oldM Manifest, c *counter) ([]op, error) {
	a, err := newApplier(h, r, dir, oldM)
	if err != nil {
		return nil, err
	}
	defer a.close()
	staged := filepath.Join(j, "staged")
	if err := os.MkdirAll(staged, 0o700); err != nil {
		return nil, fmt.Errorf("create the staging area: %w", err)
	}
	if err := c.step(); err != nil {
		return nil, err
	}
	// The new manifest as staged: checked against the package's new tree
	// before the commit record, so a package that decodes to other bytes
	// (damaged, or made by a faulty generator) never touches the tree.
	want := h.newManifest(oldM)
	stagedHash := make(map[string][32]byte, len(h.Puts))
	var ops, rmdirs, chmods []op
	for i := len(h.Deletes) - 1; i >= 0; i-- { // deepest first
		e := oldM[h.Deletes[i]]
		if e.Kind == Dir {
			rmdirs = append(rmdirs, op{verb: opRmdir, path: e.Path})
		} else {
			ops = append(ops, op{verb: opRemove, path: e.Path})
		}
	}
	ops = append(ops, rmdirs...)
	for i := range h.Puts {
		p := &h.Puts[i]
		n := strconv.Itoa(i)
		dst := filepath.Join(staged, n)
		switch p.Kind {
		case Dir:
			ops = append(ops, op{verb: opMkdir, path: p.Path})
			chmods = append([]op{{verb: opChmod, arg: strconv.FormatUint(uint64(p.Mode), 8), path: p.Path}}, chmods...)
			continue
		case Symlink:
			err = os.Symlink(p.Target, dst)
		case File:
			err = writeFile(dst, p.Mode, true, func(w io.Writer) error {
				d := sha256.New()
				if err := a.content(p, io.MultiWriter(w, d)); err != nil {
					return err
				}
				stagedHash[p.Path] = [32]byte(d.Sum(nil))
				return nil
			})
		}
		if err != nil {
			return nil, fmt.Errorf("stage %s: %w", p.Path, err)
		}
		if err := c.step(); err != nil {
			return nil, err
		}
		ops = append(ops, op{verb: opMove, arg: n, path: p.Path})
	}
	ops = append(ops, chmods...)
	if err := syncDir(staged); err != nil {
		return nil, err
	}
	for i := range want {
		if hash, ok := stagedHash[want[i].Path]; ok { // every put file, copies too, was staged
			want[i].Hash = hash
		}
	}
	if want.Root() != h.NewRoot {
		return nil, fmt.Errorf("%w: the staged files are not the package's new tree; %s is unchanged: get the package again", ErrNewTree, dir)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fota-tree-plan 1 %x %x\n", h.OldRoot, h.NewRoot)
	for _, o := range ops {
		fmt.Fprintf(&b, "%s %s %s\n", o.verb, strconv.Quote(o.arg), strconv.Quote(o.path))
	}
	// The commit record: once it is in place the update goes forward.
	if err := writeAtomic(filepath.Join(j, "plan"), []byte(b.String())); err != nil {
		return nil, err
	}
	return ops, c.step()
}

func (o op) run(dir, j string) error {
	p := filepath.Join(dir, filepath.FromSlash(o.path))
	var err error
	switch o.verb {
	case opRemove, opRmdir:
		if err = os.Remove(p); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	case opMkdir:
		if err = os.Mkdir(p, 0o755); errors.Is(err, fs.ErrExist) {
			err = nil
		}
	case opMove:
		src := filepath.Join(j, "staged", o.arg)
		if _, serr := os.Lstat(src); errors.Is(serr, fs.ErrNotExist) {
			return nil // moved before the cut; its "done" record was not yet written
		}
		err = os.Rename(src, p)
	case opChmod:
		var m uint64
		if m, err = strconv.ParseUint(o.arg, 8, 32); err == nil {
			err = os.Chmod(p, fs.FileMode(m))
		}
	default:
		return fmt.Errorf("unknown journal operation %q", o.verb)
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

func readPlan(path string, h *Header) ([]op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 4096), 1<<20)
	if !s.Scan() {
		return nil, fmt.Errorf("journal %s is empty: remove the %s directory only if the tree is still the old one", path, JournalDir)
	}
	want := fmt.Sprintf("fota-tree-plan 1 %x %x", h.OldRoot, h.NewRoot)
	if s.Text() != want {
		return nil, fmt.Errorf("%s belongs to another package (%s): finish that update with its package first", path, firstField(s.Text()))
	}
	var ops []op
	for s.Scan() {
		f := strings.SplitN(s.Text(), " ", 2)
		if len(f) != 2 {
			return nil, fmt.Errorf("journal %s: bad line %q", path, s.Text())
		}
		arg, rest, err := unquoteNext(f[1])
		if err != nil {
			return nil, fmt.Errorf("journal %s: %w", path, err)
		}
		p, _, err := unquoteNext(strings.TrimPrefix(rest, " "))
		if err != nil || !validPath(p) {
			return nil, fmt.Errorf("journal %s: bad path in %q", path, s.Text())
		}
		ops = append(ops, op{verb: f[0], arg: arg, path: p})
	}
	return ops, s.Err()
}

func firstField(s string) string {
	f := strings.Fields(s)
	if len(f) >= 4 && len(f[3]) >= 16 {
		return "new tree " + f[3][:16]
	}
	return hex.EncodeToString([]byte(s[:min(len(s), 8)]))
}

func unquoteNext(s string) (string, string, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", err
	}
	v, err := strconv.Unquote(q)
	return v, s[len(q):], err
}

func readDone(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 {
		return 0 // a record that does not parse was never renamed into place: redo from the start, every step is idempotent
	}
	return n
}

// writeAtomic replaces path with b so that a cut leaves the old or the new
// content: write a temporary file, fsync, rename, fsync the directory.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
