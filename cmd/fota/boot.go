package main

import (
	"fmt"

	"github.com/fotastack/fota/inplace"
)

func init() {
	register("boot", "power up a simulated flash device: finish an interrupted update, run the image", runBoot)
}

func runBoot(args []string) error {
	fs := newFlags("boot", "[FLASH] | --flash FLASH", "Power up a simulated flash device: finish an update a power cut interrupted, then report the image that runs.",
		"fota boot --flash dev.flash")
	flashPath := fs.String("flash", "", "flash file (required)")
	cutAfter := fs.Int("cut-after", 0, "cut power after N erase/program operations of this boot")
	torn := fs.Bool("torn", false, "leave the operation the cut hits half done")
	devKey := fs.String("device-key", "", "the device's key file: an interrupted update of an encrypted package needs it to finish")
	pos, err := fs.parseN(args, 0, 1)
	if err != nil {
		return err
	}
	if *flashPath == "" && len(pos) == 1 {
		*flashPath = pos[0]
	}
	if *flashPath == "" {
		return fs.usageError("boot needs --flash")
	}
	dk, err := deviceKey(*devKey)
	if err != nil {
		return err
	}
	f, err := inplace.OpenFlash(*flashPath)
	if err != nil {
		return err
	}
	if *cutAfter > 0 {
		f.CutAfter(*cutAfter, *torn)
	}
	res, err := inplace.Boot(f, inplace.Options{DeviceKey: dk})
	if err != nil {
		return closeAfter(f, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if res.Resumed {
		u := res.Update
		fmt.Printf("resumed the update at step %d of %d (%d flash operations, %v simulated)\n", u.FirstStep, u.Steps, u.Ops, u.SimTime)
	}
	fmt.Printf("running %s (%s, %d bytes, sha256 %x)\n", res.Version, res.DeviceType, res.ImageSize, res.ImageHash[:8])
	return nil
}
