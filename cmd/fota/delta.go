package main

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fotastack/fota/delta"
)

func init() {
	registerGroup(deltaGroup, "make, apply, inspect and benchmark signed delta packages")
	// The group's listing and help stay deltaGroup's; the command itself
	// is runDelta, which sends --tree invocations to delta_tree.go first.
	commands["delta"] = command{summary: commands["delta"].summary, run: runDelta}
}

// deltaGroup is `fota delta`.
var deltaGroup = group{
	name:    "delta",
	summary: "Signed delta packages: make one from two images, apply it, inspect it, benchmark the generator.",
	subs: []subcommand{
		{name: "make", args: "OLD NEW -o PACKAGE [--in-place]", summary: "make a signed package that turns OLD into NEW", run: deltaMake},
		{name: "apply", args: "OLD PACKAGE -o NEW", summary: "verify and apply a package to OLD", run: deltaApply},
		{name: "info", args: "PACKAGE", summary: "header, sizes, hashes, instruction statistics", run: deltaInfo},
		{name: "bench", args: "DIR", summary: "sizes of our packages and of bsdiff, xdelta3, zstd on every pair in DIR", run: deltaBench},
	},
	examples: []string{"fota delta make old.bin new.bin -o p.fota --in-place", "fota delta apply old.bin p.fota -o new.bin"},
}

func deltaMake(args []string) error {
	fs := newFlags("delta make", "OLD NEW -o PACKAGE", "Make a signed delta package that turns the image OLD into NEW (--in-place: one a device applies in place).",
		"fota delta make old.bin new.bin -o p.fota --in-place --erase-block 4096 --version 2.0 --device-type meter")
	out := fs.String("o", "", "output package")
	inPlace := fs.Bool("in-place", false, "make an in-place package")
	eb := fs.Int("erase-block", delta.DefaultEraseBlock, "erase block size in bytes")
	ram := fs.Int("ram", delta.DefaultRAM, "decoder RAM budget in bytes (arena)")
	keyPath := fs.String("key", "", "signing key file (default "+delta.DefaultKeyPath()+")")
	devType := fs.String("device-type", "", "device type string")
	ver := fs.String("version", "", "firmware version of the new image")
	seq := fs.Uint("seq", 0, "anti-rollback sequence number")
	pos, err := fs.parseN(args, 2, 2)
	if err != nil {
		return err
	}
	if *out == "" {
		return fs.usageError("-o PACKAGE is required")
	}
	if *keyPath == "" {
		*keyPath = delta.DefaultKeyPath()
	}
	key, err := delta.LoadOrCreateKey(*keyPath)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	nw, err := os.ReadFile(pos[1])
	if err != nil {
		return err
	}
	start := time.Now()
	pkg, err := delta.Make(old, nw, delta.Options{InPlace: *inPlace, EraseBlock: *eb, RAM: *ram, Key: key,
		DeviceType: *devType, Version: *ver, SeqNo: uint32(*seq)})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, pkg, 0o644); err != nil {
		return err
	}
	h, _ := delta.Parse(pkg)
	fmt.Printf("%s: %d bytes (%.2f%% of the new image), %s, apply RAM %d + %d, made in %v\n",
		*out, len(pkg), 100*float64(len(pkg))/float64(max(1, len(nw))), modeName(h), h.RAMBudget, h.EraseBlock,
		time.Since(start).Round(time.Millisecond))
	return nil
}

func modeName(h *delta.Header) string {
	if !h.InPlace {
		return "sequential"
	}
	order := "ascending"
	switch {
	case h.Order != nil:
		order = fmt.Sprintf("scheduled order in %d runs", len(h.Order))
	case h.Descending:
		order = "descending"
	}
	s := fmt.Sprintf("in-place, %d steps of %d bytes, %s", h.Steps, h.EraseBlock, order)
	if len(h.Stash) > 0 {
		s += fmt.Sprintf(", %d old blocks stashed", len(h.Stash))
	}
	return s
}

// publicKey reads --pubkey, or the default signing key's public half.
func publicKey(arg string) (ed25519.PublicKey, error) {
	if arg != "" {
		return delta.ParsePublicKey(arg)
	}
	b, err := os.ReadFile(delta.DefaultKeyPath())
	if err != nil {
		return nil, fmt.Errorf("no --pubkey and no default key: %w", err)
	}
	priv, err := delta.ParsePrivateKey(b)
	if err != nil {
		return nil, err
	}
	return priv.Public().(ed25519.PublicKey), nil
}

func deltaApply(args []string) error {
	fs := newFlags("delta apply", "OLD PACKAGE -o NEW", "Verify a package's signature and hashes and apply it to OLD.", "fota delta apply old.bin p.fota -o new.bin")
	out := fs.String("o", "", "output new image")
	pub := fs.String("pubkey", "", "verifying public key, hex or file (default: the default signing key's)")
	pos, err := fs.parseN(args, 2, 2)
	if err != nil {
		return err
	}
	if *out == "" {
		return fs.usageError("-o NEW is required")
	}
	pk, err := publicKey(*pub)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	pkg, err := os.ReadFile(pos[1])
	if err != nil {
		return err
	}
	nw, err := delta.Apply(old, pkg, pk)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, nw, 0o644)
}

func deltaInfo(args []string) error {
	fs := newFlags("delta info", "PACKAGE", "Show a package's header, sizes, hashes and instruction statistics.", "fota delta info p.fota")
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	pkg, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	h, st, err := delta.Inspect(pkg)
	if h == nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "package\t%d bytes (header %d, stream %d, signature 64)\n", len(pkg), h.HeaderSize, h.StreamSize)
	fmt.Fprintf(w, "format\tversion %d, %s\n", h.FormatVersion, modeName(h))
	fmt.Fprintf(w, "old image\t%d bytes, sha256 %x\n", h.OldSize, h.OldHash)
	fmt.Fprintf(w, "new image\t%d bytes, sha256 %x\n", h.NewSize, h.NewHash)
	fmt.Fprintf(w, "device type\t%q\n", h.DeviceType)
	fmt.Fprintf(w, "version\t%q, sequence %d\n", h.Version, h.SeqNo)
	if h.InPlace {
		fmt.Fprintf(w, "region\t%d bytes\n", h.Region())
	}
	fmt.Fprintf(w, "apply RAM\tarena %d + output block %d bytes\n", h.RAMBudget, h.EraseBlock)
	fmt.Fprintf(w, "model\tliteral context bits %d, literal history %d bytes, word differences %v\n", h.LitCtxBits, h.LitWindow, h.WordDiffs)
	fmt.Fprintf(w, "instructions\t%d (%d copies)\n", st.Instructions, st.Copies)
	fmt.Fprintf(w, "copied bytes\t%d (%d changed by a difference)\n", st.CopyBytes, st.NonZeroDiffs)
	fmt.Fprintf(w, "literal bytes\t%d\n", st.LiteralBytes)
	w.Flush()
	if err != nil {
		return fmt.Errorf("stream does not decode: %w", err)
	}
	return nil
}

// Reference figures from issue 5, measured with the public tools outside
// this run: detools in-place (4 KiB segments, lzma) and HDiffPatch -SD lzma2.
var deltaReference = map[string][2]int{
	"upy-esp8266-1.9.4_1.10": {79813, 66791},
	"upy-pybv11-oneline":     {9928, 8532},
	"esp32-app-v1_v2":        {12410, 10309},
	"nrf52-s140-6.1.1_7.3.0": {41543, 39179},
}

func deltaBench(args []string) error {
	fs := newFlags("delta bench", "DIR", "Make packages for every pair in DIR (folders with old.bin and new.bin) and compare their sizes with bsdiff, xdelta3 and zstd.",
		"fota delta bench ../shared/firmware")
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(pos[0])
	if err != nil {
		return err
	}
	var dirs []string
	for _, e := range ents {
		d := filepath.Join(pos[0], e.Name())
		if _, err := os.Stat(filepath.Join(d, "old.bin")); err == nil && e.IsDir() {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	if len(dirs) == 0 {
		return fmt.Errorf("no folder with old.bin and new.bin under %s", pos[0])
	}
	tmp, err := os.MkdirTemp("", "fota-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	_, key, _ := ed25519.GenerateKey(nil)
	pub := key.Public().(ed25519.PublicKey)
	type tool struct {
		name string
		run  func(old, nw, out string) *exec.Cmd
	}
	var tools []tool
	for _, t := range []tool{
		{"bsdiff (bzip2)", func(o, n, p string) *exec.Cmd { return exec.Command("bsdiff", o, n, p) }},
		{"xdelta3 -9 -S lzma", func(o, n, p string) *exec.Cmd {
			return exec.Command("xdelta3", "-9", "-S", "lzma", "-e", "-f", "-s", o, n, p)
		}},
		{"zstd -19 --long=27 --patch-from", func(o, n, p string) *exec.Cmd {
			return exec.Command("zstd", "-q", "-f", "-19", "--long=27", "--patch-from="+o, n, "-o", p)
		}},
	} {
		if _, err := exec.LookPath(strings.Fields(t.name)[0]); err == nil {
			tools = append(tools, t)
		}
	}
	var sb strings.Builder
	head := "| pair | new size | ours sequential | ours in-place | apply RAM (arena + block) | make time (in-place) | apply time (in-place) |"
	sep := "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for _, t := range tools {
		head += " " + t.name + " |"
		sep += " ---: |"
	}
	head += " detools in-place lzma (reference) | HDiffPatch -SD lzma2 (reference) |"
	sep += " ---: | ---: |"
	fmt.Fprintln(&sb, head)
	fmt.Fprintln(&sb, sep)
	for _, d := range dirs {
		oldPath, newPath := filepath.Join(d, "old.bin"), filepath.Join(d, "new.bin")
		old, err := os.ReadFile(oldPath)
		if err != nil {
			return err
		}
		nw, err := os.ReadFile(newPath)
		if err != nil {
			return err
		}
		seq, err := delta.Make(old, nw, delta.Options{Key: key})
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		t0 := time.Now()
		ip, err := delta.Make(old, nw, delta.Options{InPlace: true, Key: key})
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		mk := time.Since(t0)
		t0 = time.Now()
		got, err := delta.Apply(old, ip, pub)
		if err != nil {
			return fmt.Errorf("%s: apply: %w", d, err)
		}
		ap := time.Since(t0)
		if !bytes.Equal(got, nw) {
			return fmt.Errorf("%s: in-place round trip differs", d)
		}
		h, _ := delta.Parse(ip)
		name := filepath.Base(d)
		row := fmt.Sprintf("| %s | %d | %d | %d | %d + %d | %v | %v |", name, len(nw), len(seq), len(ip),
			h.RAMBudget, h.EraseBlock, mk.Round(time.Millisecond), ap.Round(time.Millisecond))
		for i, t := range tools {
			p := filepath.Join(tmp, fmt.Sprintf("p%d", i))
			if out, err := t.run(oldPath, newPath, p).CombinedOutput(); err != nil {
				row += fmt.Sprintf(" failed: %v %s |", err, bytes.TrimSpace(out))
				continue
			}
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			row += fmt.Sprintf(" %d |", st.Size())
		}
		if ref, ok := deltaReference[name]; ok {
			row += fmt.Sprintf(" %d | %d |", ref[0], ref[1])
		} else {
			row += " | |"
		}
		fmt.Fprintln(&sb, row)
	}
	fmt.Print(sb.String())
	return nil
}

func runDelta(args []string) error {
	if isTreeCommand(args) { // file trees: delta_tree.go
		return runDeltaTree(args)
	}
	return deltaGroup.run(args)
}
