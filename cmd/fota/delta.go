package main

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/seal"
	"github.com/fotastack/fota/delta/signer"
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
		{name: "key", args: "[--key FILE|pkcs11:URI] [--generate]", summary: "print the signing key's public key; --generate makes one in an HSM", run: deltaKey},
		{name: "device-key", args: "-o FILE", summary: "make a device's decryption key (X25519) for encrypted packages", run: deltaDeviceKey},
		{name: "bench", args: "DIR", summary: "sizes, times and memory of our packages and of xdelta3, zstd, bsdiff, detools, HDiffPatch on every pair in DIR", run: deltaBench},
	},
	examples: []string{"fota delta make old.bin new.bin -o p.fota --in-place", "fota delta apply old.bin p.fota -o new.bin",
		"fota delta make old.bin new.bin -o p.fota --in-place --encrypt-to dev1.pub --encrypt-to dev2.pub"},
}

func deltaMake(args []string) error {
	fs := newFlags("delta make", "OLD NEW -o PACKAGE", "Make a signed delta package that turns the image OLD into NEW (--in-place: one a device applies in place).",
		"fota delta make old.bin new.bin -o p.fota --in-place --erase-block 4096 --version 2.0 --device-type meter")
	out := fs.String("o", "", "output package")
	inPlace := fs.Bool("in-place", false, "make an in-place package")
	eb := fs.Int("erase-block", delta.DefaultEraseBlock, "erase block size in bytes")
	ram := fs.Int("ram", delta.DefaultRAM, "decoder RAM budget in bytes (arena); with --encrypt-to the default leaves one chunk of the installer's budget for decryption")
	keyPath := fs.String("key", "", "signing key: a file (default "+delta.DefaultKeyPath()+") or a PKCS#11 URI pkcs11:token=T;object=K?module-path=LIB (PIN from $FOTA_PKCS11_PIN or pin-source=file:PATH)")
	var encryptTo keyList
	fs.Var(&encryptTo, "encrypt-to", "encrypt the package to this device's X25519 public key (hex or a .pub / device key file from fota delta device-key); repeat for a group")
	announce := fs.String("announce-key", "", "announce the next signing key (Ed25519 public: hex, key file or pkcs11: URI): devices that install this package trust only it from then on")
	chunk := fs.Int("chunk-size", seal.DefaultChunkSize, "with --encrypt-to: bytes per encrypted chunk (512 to 16384; the installer holds one)")
	devType := fs.String("device-type", "", "device type string")
	ver := fs.String("version", "", "firmware version of the new image")
	seq := fs.Uint("seq", 0, "anti-rollback sequence number")
	fast := fs.Bool("fast", false, "one match setting instead of three: about a quarter faster, packages up to about 1% larger (delta/BENCH.md)")
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
	sealOpts, err := sealOptions(encryptTo, *announce, *chunk)
	if err != nil {
		return err
	}
	ramSet := false
	fs.Visit(func(f *flag.Flag) { ramSet = ramSet || f.Name == "ram" })
	if len(sealOpts.To) > 0 && !ramSet {
		// The installer holds one decrypted chunk beside the decoder.
		*ram -= seal.ChunkRAM(*chunk)
		if *ram < delta.DefaultRAM/2 {
			return fs.usageError(fmt.Sprintf("--chunk-size %d leaves the decoder %d bytes of the default budget: use a smaller chunk or give --ram", *chunk, *ram))
		}
	}
	key, err := signer.Open(*keyPath)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	defer key.Close()
	old, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	nw, err := os.ReadFile(pos[1])
	if err != nil {
		return err
	}
	start := time.Now()
	pkg, err := delta.MakeSigned(old, nw, delta.Options{InPlace: *inPlace, EraseBlock: *eb, RAM: *ram,
		DeviceType: *devType, Version: *ver, SeqNo: uint32(*seq), Fast: *fast}, signer.Unwrap(key))
	if err != nil {
		return err
	}
	h, _ := delta.Parse(pkg)
	sealed := ""
	if len(sealOpts.To) > 0 || sealOpts.NewKey != nil {
		sealOpts.Signer = key
		if pkg, err = seal.Seal(pkg, sealOpts); err != nil {
			return err
		}
		sealed = sealedSummary(len(sealOpts.To), sealOpts.NewKey)
	}
	if err := os.WriteFile(*out, pkg, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes (%.2f%% of the new image), %s%s, apply RAM %d + %d, made in %v\n",
		*out, len(pkg), 100*float64(len(pkg))/float64(max(1, len(nw))), modeName(h), sealed, h.RAMBudget, h.EraseBlock,
		time.Since(start).Round(time.Millisecond))
	return nil
}

func sealedSummary(recipients int, next ed25519.PublicKey) string {
	s := ""
	if recipients > 0 {
		s += fmt.Sprintf(", encrypted to %d device key(s)", recipients)
	}
	if next != nil {
		s += fmt.Sprintf(", announces signing key %x", []byte(next[:8]))
	}
	return s
}

// keyList is a repeatable flag.
type keyList []string

func (k *keyList) String() string     { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error { *k = append(*k, v); return nil }

// sealOptions reads --encrypt-to, --announce-key and --chunk-size.
func sealOptions(to []string, announce string, chunk int) (seal.Options, error) {
	o := seal.Options{ChunkSize: chunk}
	for _, s := range to {
		k, err := seal.ParseDevicePublicKey(s)
		if err != nil {
			return o, fmt.Errorf("--encrypt-to: %w", err)
		}
		o.To = append(o.To, k)
	}
	if announce != "" {
		if signer.IsPKCS11(announce) {
			s, err := signer.Open(announce)
			if err != nil {
				return o, fmt.Errorf("--announce-key: %w", err)
			}
			o.NewKey, err = signer.PublicKey(s)
			s.Close()
			if err != nil {
				return o, err
			}
		} else {
			k, err := delta.ParsePublicKey(announce)
			if err != nil {
				return o, fmt.Errorf("--announce-key: %w", err)
			}
			o.NewKey = k
		}
	}
	return o, nil
}

// deltaKey prints the signing key's public key (what devices trust:
// fota flash create --trust), generating it in the token with --generate.
func deltaKey(args []string) error {
	fs := newFlags("delta key", "[--key FILE|pkcs11:URI] [--generate]", "Print the package signing key's Ed25519 public key in hex; --generate makes the key pair in a PKCS#11 token (the private key never leaves it).",
		"fota delta key", "FOTA_PKCS11_PIN=... fota delta key --generate --key 'pkcs11:token=fota;object=signing?module-path=/usr/lib/softhsm/libsofthsm2.so'")
	keyPath := fs.String("key", "", "signing key: a file (default "+delta.DefaultKeyPath()+", made when missing) or a pkcs11: URI")
	generate := fs.Bool("generate", false, "make the key pair in the PKCS#11 token the URI names")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *keyPath == "" {
		*keyPath = delta.DefaultKeyPath()
	}
	open := signer.Open
	if *generate {
		if !signer.IsPKCS11(*keyPath) {
			return fs.usageError("--generate makes a key in an HSM: give --key pkcs11:URI (a key file is made on first use)")
		}
		open = signer.Generate
	}
	s, err := open(*keyPath)
	if err != nil {
		return err
	}
	defer s.Close()
	pub, err := signer.PublicKey(s)
	if err != nil {
		return err
	}
	fmt.Println(hex.EncodeToString(pub))
	return nil
}

// deltaDeviceKey makes a device's X25519 decryption key: the private file
// for the device (mode 0600), FILE.pub for the packager.
func deltaDeviceKey(args []string) error {
	fs := newFlags("delta device-key", "-o FILE", "Make a device's X25519 key for encrypted packages: FILE (private, for the device: fota install/boot/client --device-key) and FILE.pub (for fota delta make --encrypt-to). Prints the public key.",
		"fota delta device-key -o meter-17.key")
	out := fs.String("o", "", "private key file to create (FILE.pub gets the public key)")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *out == "" {
		return fs.usageError("-o FILE is required")
	}
	k, err := seal.GenerateDeviceKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("device key: %w (an existing key is never overwritten)", err)
	}
	_, werr := f.Write(seal.MarshalDeviceKey(k))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	pub := hex.EncodeToString(k.PublicKey().Bytes())
	if err := os.WriteFile(*out+".pub", []byte(pub+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Println(pub)
	return nil
}

// deviceKey reads --device-key (empty: none).
func deviceKey(path string) (*ecdh.PrivateKey, error) {
	if path == "" {
		return nil, nil
	}
	return seal.LoadDeviceKey(path)
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
	devKey := fs.String("device-key", "", "a sealed package encrypted to a device: that device's key file")
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
	if seal.IsSealed(pkg) {
		dk, err := deviceKey(*devKey)
		if err != nil {
			return err
		}
		// The sealed package is checked with the trusted key; the inner
		// one is then held to the same key, as a device does.
		if pkg, _, err = seal.Open(pkg, pk, dk); err != nil {
			return err
		}
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
	if seal.IsSealed(pkg) {
		return sealInfo(pkg)
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

// benchTool is a delta tool `fota delta bench` runs as a child process,
// timed and measured (peak resident memory) like our own generator.
type benchTool struct {
	name string
	// cmd makes the patch of old and new at out; nil when the tool is
	// not installed.
	cmd func(old, nw, out string) *exec.Cmd
}

// hdiffpatchPy makes a patch with the PyPI hdiffpatch module (HDiffPatch's
// diff with LZMA2 level 9, 16 MiB window, as hdiffz -c-lzma2-9-16m).
const hdiffpatchPy = `import sys, hdiffpatch
o, n = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
open(sys.argv[3], "wb").write(hdiffpatch.diff(o, n, hdiffpatch.Lzma2Config(level=9, window=24), validate=False))`

// benchTools are the peers in bench order; tools not installed are left
// out (their column says so).
func benchTools() []benchTool {
	have := func(name string) bool { _, err := exec.LookPath(name); return err == nil }
	pyHas := func(mod string) bool {
		return have("python3") && exec.Command("python3", "-c", "import "+mod).Run() == nil
	}
	tool := func(name string, ok bool, f func(o, n, p string) *exec.Cmd) benchTool {
		if !ok {
			f = nil
		}
		return benchTool{name, f}
	}
	detools := have("detools")
	return []benchTool{
		tool("xdelta3 -9 -S lzma", have("xdelta3"), func(o, n, p string) *exec.Cmd {
			return exec.Command("xdelta3", "-9", "-S", "lzma", "-e", "-f", "-s", o, n, p)
		}),
		tool("zstd -19 --long=27 --patch-from", have("zstd"), func(o, n, p string) *exec.Cmd {
			return exec.Command("zstd", "-q", "-f", "-19", "--long=27", "--patch-from="+o, n, "-o", p)
		}),
		tool("bsdiff (bzip2)", have("bsdiff"), func(o, n, p string) *exec.Cmd { return exec.Command("bsdiff", o, n, p) }),
		tool("detools sequential lzma", detools, func(o, n, p string) *exec.Cmd {
			return exec.Command("detools", "create_patch", "-c", "lzma", o, n, p)
		}),
		tool("detools in-place lzma 4 KiB", detools, func(o, n, p string) *exec.Cmd {
			return exec.Command("detools", "create_patch_in_place", "-c", "lzma", "--segment-size", "4096",
				"--memory-size", fmt.Sprint(detoolsMemory(o, n)), o, n, p)
		}),
		tool("HDiffPatch lzma2-9-16m (PyPI hdiffpatch)", pyHas("hdiffpatch"), func(o, n, p string) *exec.Cmd {
			return exec.Command("python3", "-c", hdiffpatchPy, o, n, p)
		}),
	}
}

// detoolsMemory is the flash detools' in-place patch is made for: both
// images rounded up to 4 KiB segments, plus the two segments of its
// minimum shift.
func detoolsMemory(oldPath, newPath string) int64 {
	var m int64
	for _, p := range []string{oldPath, newPath} {
		if st, err := os.Stat(p); err == nil {
			m = max(m, st.Size())
		}
	}
	return (m+4095)/4096*4096 + 2*4096
}

// benchRun is one measured child process.
type benchRun struct {
	size    int64
	time    time.Duration
	peakRSS int64 // bytes
	err     error
}

func (r benchRun) cell() string {
	if r.err != nil {
		return "failed: " + strings.ReplaceAll(r.err.Error(), "|", "/")
	}
	return fmt.Sprintf("%d (%.2fs, %d MB)", r.size, r.time.Seconds(), (r.peakRSS+1<<19)>>20)
}

// measure runs cmd, which writes out, and reports out's size, the wall
// time and the child's peak resident memory.
func measure(cmd *exec.Cmd, out string) benchRun {
	t0 := time.Now()
	msg, err := cmd.CombinedOutput()
	r := benchRun{time: time.Since(t0)}
	if err != nil {
		r.err = fmt.Errorf("%s: %v %s", filepath.Base(cmd.Path), err, bytes.TrimSpace(msg))
		return r
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.peakRSS = ru.Maxrss * 1024 // KiB on Linux
	}
	st, err := os.Stat(out)
	if err != nil {
		r.err = err
		return r
	}
	r.size = st.Size()
	return r
}

// readAnchors reads HDIFFZ.tsv (pair, hdiffz -SD lzma2 bytes) from the
// bench folder, if there is one.
func readAnchors(dir string) map[string]int64 {
	b, err := os.ReadFile(filepath.Join(dir, "HDIFFZ.tsv"))
	if err != nil {
		return nil
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		var n int64
		if _, err := fmt.Sscan(f[1], &n); err == nil && n > 0 {
			m[f[0]] = n
		}
	}
	return m
}

func deltaBench(args []string) error {
	fs := newFlags("delta bench", "DIR", "Make packages for every pair in DIR (folders with old.bin and new.bin) with our generator "+
		"(in place, in place --fast, sequential) and with the peers installed (xdelta3, zstd --patch-from, bsdiff, detools and "+
		"PyPI hdiffpatch), each a child process timed with its peak memory, and print one table. DIR/HDIFFZ.tsv, when present, "+
		"gives recorded hdiffz -SD sizes to compare with.",
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
		if _, err := os.Stat(filepath.Join(d, "old.bin")); err == nil {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	if len(dirs) == 0 {
		return fmt.Errorf("no folder with old.bin and new.bin under %s", pos[0])
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench runs this binary's delta make as a child: %w", err)
	}
	tmp, err := os.MkdirTemp("", "fota-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	keyPath := filepath.Join(tmp, "key")
	key, err := delta.LoadOrCreateKey(keyPath)
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	anchors := readAnchors(pos[0])
	tools := benchTools()
	ours := func(o, n, p string, extra ...string) *exec.Cmd {
		return exec.Command(self, append([]string{"delta", "make", o, n, "-o", p, "--key", keyPath}, extra...)...)
	}
	var sb strings.Builder
	head := "| pair | new size | ours in-place | ours in-place --fast | ours sequential | apply RAM (arena + block) | apply time (in-place) |"
	sep := "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for _, t := range tools {
		head += " " + t.name + " |"
		sep += " ---: |"
	}
	head += " HDiffPatch -SD lzma2 (HDIFFZ.tsv) | in-place / HDIFFZ.tsv |"
	sep += " ---: | ---: |"
	fmt.Fprintln(&sb, head)
	fmt.Fprintln(&sb, sep)
	var lnSum float64
	var nAnch int
	var oursTime, zstdTime time.Duration
	for i, d := range dirs {
		name := filepath.Base(d)
		fmt.Fprintf(os.Stderr, "bench: pair %d of %d: %s\n", i+1, len(dirs), name)
		oldPath, newPath := filepath.Join(d, "old.bin"), filepath.Join(d, "new.bin")
		old, err := os.ReadFile(oldPath)
		if err != nil {
			return err
		}
		nw, err := os.ReadFile(newPath)
		if err != nil {
			return err
		}
		ipPath := filepath.Join(tmp, "ip")
		ip := measure(ours(oldPath, newPath, ipPath, "--in-place"), ipPath)
		if ip.err != nil {
			return fmt.Errorf("%s: %w", name, ip.err)
		}
		fast := measure(ours(oldPath, newPath, filepath.Join(tmp, "fast"), "--in-place", "--fast"), filepath.Join(tmp, "fast"))
		seq := measure(ours(oldPath, newPath, filepath.Join(tmp, "seq")), filepath.Join(tmp, "seq"))
		pkg, err := os.ReadFile(ipPath)
		if err != nil {
			return err
		}
		t0 := time.Now()
		got, err := delta.Apply(old, pkg, pub)
		if err != nil {
			return fmt.Errorf("%s: apply: %w", name, err)
		}
		ap := time.Since(t0)
		if !bytes.Equal(got, nw) {
			return fmt.Errorf("%s: in-place round trip differs", name)
		}
		h, err := delta.Parse(pkg)
		if err != nil {
			return err
		}
		row := fmt.Sprintf("| %s | %d | %s | %s | %s | %d + %d | %v |", name, len(nw), ip.cell(), fast.cell(), seq.cell(),
			h.RAMBudget, h.EraseBlock, ap.Round(time.Millisecond))
		for j, t := range tools {
			if t.cmd == nil {
				row += " not installed |"
				continue
			}
			p := filepath.Join(tmp, fmt.Sprintf("p%d", j))
			r := measure(t.cmd(oldPath, newPath, p), p)
			if strings.HasPrefix(t.name, "zstd") && r.err == nil {
				oursTime += ip.time
				zstdTime += r.time
			}
			row += " " + r.cell() + " |"
		}
		if a, ok := anchors[name]; ok {
			lnSum += math.Log(float64(ip.size) / float64(a))
			nAnch++
			row += fmt.Sprintf(" %d | %.3f |", a, float64(ip.size)/float64(a))
		} else {
			row += " | |"
		}
		fmt.Fprintln(&sb, row)
	}
	fmt.Print(sb.String())
	fmt.Println()
	if nAnch > 0 {
		fmt.Printf("in-place / HDiffPatch (HDIFFZ.tsv), geometric mean over %d pairs: %.3f\n", nAnch, math.Exp(lnSum/float64(nAnch)))
	}
	if zstdTime > 0 {
		fmt.Printf("make time, in place, over the pairs zstd ran on: %.2f s against zstd's %.2f s (%.2fx)\n",
			oursTime.Seconds(), zstdTime.Seconds(), oursTime.Seconds()/zstdTime.Seconds())
	}
	fmt.Println("cells: size in bytes (wall time, peak resident memory of the process); times on a shared machine are noisy")
	return nil
}

func runDelta(args []string) error {
	if isTreeCommand(args) { // file trees: delta_tree.go
		return runDeltaTree(args)
	}
	return deltaGroup.run(args)
}

// sealInfo shows a sealed package's envelope: what a packager can see
// without a device key.
func sealInfo(pkg []byte) error {
	h, err := seal.ReadHeader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "sealed package\t%d bytes (header %d, payload %d, signature %d)\n", len(pkg), h.PayloadOff, h.PayloadWireSize(), seal.SigSize)
	fmt.Fprintf(w, "inner package\t%d bytes\n", h.PayloadSize)
	if h.Encrypted {
		fmt.Fprintf(w, "encrypted\tto %d device key(s), %d chunks of %d bytes (AES-256-GCM)\n", h.Recipients, h.Chunks(), h.ChunkSize)
	} else {
		fmt.Fprintf(w, "encrypted\tno\n")
	}
	if h.NewKey != nil {
		fmt.Fprintf(w, "announces\tnext signing key %s\n", hex.EncodeToString(h.NewKey))
	}
	return w.Flush()
}
