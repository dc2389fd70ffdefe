package firmware_test

import (
	"context"
	"log"
	"path/filepath"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/client/firmware"
	"github.com/fotastack/fota/inplace"
)

// A simulated device: its flash file (provisioned at the factory with
// inplace.Provision), the Firmware Update object over it and the LwM2M
// client. After an Update the object reboots the device: the client
// registers again and /3/0/3 names the version that booted.
func ExampleAttach() {
	dir := "/var/lib/device-1"
	flash, err := inplace.OpenFlash(filepath.Join(dir, "flash.bin"))
	if err != nil {
		log.Fatal(err)
	}
	defer flash.Close()
	fw, err := firmware.Open(firmware.Config{Flash: flash, StateDir: filepath.Join(dir, "state")})
	if err != nil {
		log.Fatal(err)
	}
	defer fw.Close()
	version, err := fw.RunningVersion()
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Config{Endpoint: "device-1", ServerURI: "coaps://127.0.0.1:5684",
		PSKIdentity: "device-1", PSKKey: []byte("secret"), StateDir: dir,
		Device: client.DeviceInfo{FirmwareVersion: version, DeviceType: "sim-1"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	firmware.Attach(ctx, c, fw) // object 5, reboot hook, PSK for coaps pulls
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer c.Stop()
	// ... the server writes /5/0/0 or /5/0/1 and executes /5/0/2.
}
