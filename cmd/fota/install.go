package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/fotastack/fota/inplace"
)

func init() {
	register("install", "apply a delta package in place on a simulated flash (power cuts on demand)", runInstall)
}

// runInstall is the device side of an update: the package (as downloaded)
// is verified and staged, then applied in place. --cut-after counts the
// erase and program operations of the in-place phase, from the first
// operation after the package is staged (the download is complete at that
// point, so boot can always finish the update); --cut-staging cuts during
// the staging copy instead, after which boot runs the old image.
func runInstall(args []string) error {
	fs := newFlags("install", "--flash FLASH --patch PACKAGE", "Apply a delta package in place on a simulated flash; --cut-after simulates a power cut (exit status 3).",
		"fota install --flash dev.flash --patch p.fota --cut-after 200 --torn")
	flashPath := fs.String("flash", "", "flash file (required)")
	patchPath := fs.String("patch", "", "delta package (required)")
	cutAfter := fs.Int("cut-after", 0, "cut power after N erase/program operations of the in-place phase")
	cutStaging := fs.Int("cut-staging", 0, "cut power after N erase/program operations of the staging copy")
	torn := fs.Bool("torn", false, "leave the operation the cut hits half done")
	ram := fs.Int("ram", 0, "installer RAM budget in bytes, at most the device's (default: the device's, set by flash create --ram)")
	quiet := fs.Bool("q", false, "no progress bar")
	devKey := fs.String("device-key", "", "the device's key file (fota delta device-key): decrypts packages encrypted to it")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *flashPath == "" || *patchPath == "" {
		return fs.usageError("install needs --flash and --patch")
	}
	patch, err := os.ReadFile(*patchPath)
	if err != nil {
		return err
	}
	f, err := inplace.OpenFlash(*flashPath)
	if err != nil {
		return err
	}
	dk, err := deviceKey(*devKey)
	if err != nil {
		return err
	}
	opts := inplace.Options{RAMBudget: *ram, DeviceKey: dk}
	if *cutStaging > 0 {
		f.CutAfter(*cutStaging, *torn)
	}
	hdr, err := inplace.Stage(f, patch, opts)
	if err != nil {
		return closeAfter(f, err)
	}
	if *cutAfter > 0 {
		f.CutAfter(*cutAfter, *torn)
	}
	var bar *progressBar
	if !*quiet {
		bar = newProgressBar("install", int64(hdr.Steps))
		opts.Progress = func(done, _ int) { bar.Set(int64(done)) }
	}
	rep, err := inplace.Resume(f, opts)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return closeAfter(f, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Printf("installed %s: %d steps, %d-byte package, %d flash operations, %v simulated flash time, installer RAM %d bytes\n",
		rep.Version, rep.Steps, rep.PatchBytes, rep.Ops, rep.SimTime, rep.ArenaPeak)
	return nil
}

// closeAfter saves the flash as it was left and turns a power cut into
// exit status 3.
func closeAfter(f *inplace.Flash, err error) error {
	cerr := f.Close()
	if errors.Is(err, inplace.ErrPowerCut) {
		return &exitError{3, fmt.Errorf("power cut after %d flash operations: %w", f.Stats().Ops(), err)}
	}
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}
