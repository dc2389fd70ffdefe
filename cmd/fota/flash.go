package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/inplace"
)

func init() {
	registerGroup(flashGroup, "simulated NOR flash device: create, info, read")
}

// flashGroup is `fota flash`.
var flashGroup = group{
	name:    "flash",
	summary: "A simulated NOR flash device in a file: make one holding an image, inspect it, read its image back.",
	subs: []subcommand{
		{name: "create", args: "--image IMAGE -o FLASH", summary: "make a flash file provisioned with an image", run: flashCreate},
		{name: "info", args: "FLASH", summary: "layout, image, journal state and wear", run: flashInfo},
		{name: "read", args: "FLASH -o IMAGE", summary: "write out the image the flash boots", run: flashRead},
	},
	examples: []string{"fota flash create --size 1048576 --erase-block 4096 --image old.bin -o dev.flash", "fota flash info dev.flash"},
}

// parseSize reads a byte count with an optional K/M suffix (powers of 1024).
func parseSize(s string) (int, error) {
	mul := 1
	switch {
	case strings.HasSuffix(s, "K") || strings.HasSuffix(s, "k"):
		mul, s = 1024, s[:len(s)-1]
	case strings.HasSuffix(s, "M") || strings.HasSuffix(s, "m"):
		mul, s = 1024*1024, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a byte count like 1048576, 64K or 1M", s)
	}
	return n * mul, nil
}

// flashSpec is a new simulated flash: its geometry and the image it is
// manufactured with. `fota flash create` and `fota client --flash --image`
// both make one.
type flashSpec struct {
	Path       string // flash file to write
	Image      string // firmware image file to provision
	Size       string // flash size, K/M suffixes allowed
	EraseBlock string
	PageSize   int
	Endurance  int
	Version    string
	DeviceType string
	Trust      string // public key (hex or key file); "": the default signing key's
	Seed       uint64
	RAM        int
}

// flashGeometryFlags adds the geometry flags of a new flash to fs, with
// the defaults of `fota flash create`.
func flashGeometryFlags(fs *flag.FlagSet, s *flashSpec, sizeFlag string) {
	fs.StringVar(&s.Size, sizeFlag, "1M", "flash size in bytes (K, M suffixes allowed)")
	fs.StringVar(&s.EraseBlock, "erase-block", "4096", "erase block size: 4096 (sector) or 65536 (block)")
	fs.StringVar(&s.DeviceType, "device-type", "", "device type packages must name")
	fs.StringVar(&s.Trust, "trust", "", "public key trusted to sign updates: hex or a key file (default: the public half of the default signing key; fota firmware key prints the server's)")
	s.PageSize, s.Endurance, s.Seed = inplace.DefaultPageSize, inplace.DefaultEndurance, 1
}

func flashCreate(args []string) error {
	fs := newFlags("flash create", "--image IMAGE -o FLASH", "Make a simulated NOR flash file provisioned with a firmware image.",
		"fota flash create --size 1M --erase-block 4096 --image old.bin --version 1.0 -o dev.flash")
	var s flashSpec
	flashGeometryFlags(fs.FlagSet, &s, "size")
	fs.IntVar(&s.PageSize, "page", inplace.DefaultPageSize, "program page size in bytes")
	fs.IntVar(&s.Endurance, "endurance", inplace.DefaultEndurance, "erase cycles per block")
	fs.StringVar(&s.Image, "image", "", "firmware image to provision (required)")
	fs.StringVar(&s.Path, "o", "", "flash file to write (required)")
	fs.StringVar(&s.Version, "version", "1.0.0", "version of the provisioned image")
	fs.Uint64Var(&s.Seed, "seed", 1, "seed of the torn-operation noise")
	fs.IntVar(&s.RAM, "ram", 0, "the device's installer RAM in bytes (default 16 KiB + one erase block)")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if s.Image == "" || s.Path == "" {
		return fs.usageError("flash create needs --image and -o")
	}
	summary, err := s.create()
	if err != nil {
		return err
	}
	fmt.Print(summary)
	return nil
}

// create writes the flash file and provisions the image; it returns a
// two-line summary (geometry, image, trusted key, layout).
func (s flashSpec) create() (string, error) {
	sz, err := parseSize(s.Size)
	if err != nil {
		return "", err
	}
	b, err := parseSize(s.EraseBlock)
	if err != nil {
		return "", err
	}
	img, err := os.ReadFile(s.Image)
	if err != nil {
		return "", err
	}
	var pub ed25519.PublicKey
	if s.Trust != "" {
		if pub, err = delta.ParsePublicKey(s.Trust); err != nil {
			return "", err
		}
	} else {
		priv, err := delta.LoadOrCreateKey(delta.DefaultKeyPath())
		if err != nil {
			return "", err
		}
		pub = priv.Public().(ed25519.PublicKey)
	}
	if s.RAM < 0 || s.RAM > 1<<30 {
		return "", fmt.Errorf("--ram %d out of range", s.RAM)
	}
	f, err := inplace.CreateFlash(s.Path, inplace.Geometry{Size: sz, EraseBlock: b, PageSize: s.PageSize, Endurance: s.Endurance}, s.Seed)
	if err != nil {
		return "", err
	}
	p := inplace.Provision{Image: img, Version: s.Version, DeviceType: s.DeviceType, TrustedKey: pub, RAMBudget: uint32(s.RAM)}
	if err := p.Write(f); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	l, _ := inplace.LayoutFor(f.Geometry())
	sum := sha256.Sum256(img)
	return fmt.Sprintf("%s: %d bytes, %d-byte erase blocks; image %s (%d bytes, sha256 %x), trusting key %x\nlayout: %s\n",
		s.Path, sz, b, s.Version, len(img), sum[:8], pub[:8], l), nil
}

func flashInfo(args []string) error {
	fs := newFlags("flash info", "FLASH", "Show a simulated flash: geometry, layout, the image it boots, the update journal and wear.", "fota flash info dev.flash")
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	f, err := inplace.OpenFlash(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := inplace.Inspect(f)
	if err != nil {
		return err
	}
	g := f.Geometry()
	fmt.Printf("flash:    %d bytes, %d blocks of %d bytes, %d-byte pages, endurance %d\n", g.Size, g.Blocks(), g.EraseBlock, g.PageSize, g.Endurance)
	fmt.Printf("layout:   %s\n", info.Layout)
	if info.Boot != nil {
		r := info.Boot
		fmt.Printf("image:    version %q, device type %q, %d bytes, sha256 %s, seqno %d\n", r.Version, r.DeviceType, r.ImageSize, hex.EncodeToString(r.ImageHash[:]), r.SeqNo)
		fmt.Printf("trusted:  %s\n", hex.EncodeToString(r.TrustedKey))
		if r.RAMBudget > 0 {
			fmt.Printf("ram:      %d bytes for the installer\n", r.RAMBudget)
		}
	} else {
		fmt.Printf("image:    none (%v)\n", info.BootErr)
	}
	j := info.Journal
	fmt.Printf("journal:  %s", j.State)
	if j.State == inplace.StateScratch || j.State == inplace.StateDone {
		fmt.Printf(" (step %d of %d)", j.Step, j.Steps)
	}
	if j.State != inplace.StateIdle {
		fmt.Printf(", package %d bytes sha256 %x", j.PatchLen, j.PatchHash[:8])
	}
	fmt.Println()
	s := f.Stats()
	fmt.Printf("wear:     max %d erases (block %d), mean %.2f\n", info.WearMax, info.WearMaxBlock, info.WearMean)
	fmt.Printf("ops:      %d erases, %d programs, %d reads; simulated time %v\n", s.Erases, s.Programs, s.Reads, s.SimTime.Round(time.Millisecond))
	return nil
}

func flashRead(args []string) error {
	fs := newFlags("flash read", "FLASH -o IMAGE", "Write out the image a simulated flash boots.", "fota flash read dev.flash -o image.bin")
	out := fs.String("o", "", "`file` to write the image to (required)")
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	if *out == "" {
		return fs.usageError("-o IMAGE is required")
	}
	f, err := inplace.OpenFlash(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	img, rec, err := inplace.Image(f)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, img, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: version %q, %d bytes\n", *out, rec.Version, len(img))
	return nil
}

func runFlash(args []string) error { return flashGroup.run(args) }
