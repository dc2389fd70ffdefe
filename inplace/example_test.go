package inplace_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/inplace"
)

// A device is provisioned with an image and a trusted key, an update is cut
// by a power failure halfway, and the next boot finishes it.
func Example() {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	old := bytes.Repeat([]byte("version one "), 4000)
	new := append([]byte("a new header "), bytes.Repeat([]byte("version two "), 4100)...)
	patch, _ := delta.Make(old, new, delta.Options{InPlace: true, RAM: inplace.DefaultDecoderRAM, Key: key, Version: "2", DeviceType: "meter"})

	flash, _ := inplace.NewFlash(inplace.Geometry{Size: 256 << 10}, 1)
	dev := inplace.Provision{Image: old, Version: "1", DeviceType: "meter", TrustedKey: key.Public().(ed25519.PublicKey)}
	if err := dev.Write(flash); err != nil {
		fmt.Println(err)
		return
	}

	flash.CutAfter(100, true) // the 100th erase or program is torn, then nothing
	_, err := inplace.Install(flash, patch, inplace.Options{})
	fmt.Println("install:", errors.Is(err, inplace.ErrPowerCut))

	flash.Reboot()
	res, err := inplace.Boot(flash, inplace.Options{})
	img, _, _ := inplace.Image(flash)
	fmt.Println("boot:", err, res.Resumed, res.Version, bytes.Equal(img, new))
	// Output:
	// install: true
	// boot: <nil> true 2 true
}
