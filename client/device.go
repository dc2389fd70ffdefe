package client

import (
	"sync/atomic"
	"time"

	"github.com/fotastack/fota/lwm2m"
)

// deviceVersion is the Device object version the client implements and
// announces (</3>;ver=1.1).
const deviceVersion = "1.1"

// Device object (ID 3) resource IDs, LwM2M Core E.4: the resources
// NewDeviceObject implements. Their definitions are the registry's (Model).
const (
	DevManufacturer      = 0
	DevModel             = 1
	DevSerial            = 2
	DevFirmwareVersion   = 3
	DevReboot            = 4
	DevFactoryReset      = 5
	DevErrorCode         = 11
	DevCurrentTime       = 13
	DevUTCOffset         = 14
	DevTimezone          = 15
	DevSupportedBindings = 16
	DevDeviceType        = 17
	DevHardwareVersion   = 18
	DevSoftwareVersion   = 19
)

// DeviceInfo is what the Device object reports about the device.
type DeviceInfo struct {
	Manufacturer    string
	Model           string
	Serial          string
	FirmwareVersion string // /3/0/3; issue 7's installer updates it after an update
	DeviceType      string
	HardwareVersion string
	SoftwareVersion string
}

// NewDeviceObject makes the Device object (3) with instance 0, at the
// object version and with the resource definitions of Model(3, deviceVersion). Current
// Time is the device clock plus whatever offset the server wrote; Reboot
// and Factory Reset are wired by the caller with OnExecute.
func NewDeviceObject(info DeviceInfo, bindings string) *SimpleObject {
	o := newBuiltinObject(3, deviceVersion, DevManufacturer, DevModel, DevSerial, DevFirmwareVersion,
		DevReboot, DevFactoryReset, DevErrorCode, DevCurrentTime, DevUTCOffset, DevTimezone,
		DevSupportedBindings, DevDeviceType, DevHardwareVersion, DevSoftwareVersion)
	o.AddInstance(0, map[uint16]lwm2m.Value{
		DevManufacturer:      lwm2m.String(info.Manufacturer),
		DevModel:             lwm2m.String(info.Model),
		DevSerial:            lwm2m.String(info.Serial),
		DevFirmwareVersion:   lwm2m.String(info.FirmwareVersion),
		DevUTCOffset:         lwm2m.String("+00:00"),
		DevTimezone:          lwm2m.String("UTC"),
		DevSupportedBindings: lwm2m.String(bindings),
		DevDeviceType:        lwm2m.String(info.DeviceType),
		DevHardwareVersion:   lwm2m.String(info.HardwareVersion),
		DevSoftwareVersion:   lwm2m.String(info.SoftwareVersion),
	})
	// LwM2M Core E.4: Error Code 0 means "no error"; it always has an instance.
	_ = o.SetMultiple(lwm2m.ResourcePath(3, 0, DevErrorCode), map[uint16]lwm2m.Value{0: lwm2m.Integer(0)})
	// Current Time: a write sets an offset from the device clock, a read
	// returns clock+offset.
	// The offset is read under the object's lock and written outside it
	// (OnWrite runs before the write is applied), hence atomic.
	var offset atomic.Int64
	o.OnRead(DevCurrentTime, func(uint16) lwm2m.Value {
		return lwm2m.Time(time.Now().Add(time.Duration(offset.Load())))
	})
	o.OnWrite(func(p lwm2m.Path, entries []lwm2m.Entry) error {
		for _, e := range entries {
			if e.Path.Resource() == DevCurrentTime {
				offset.Store(int64(time.Until(e.Value.Time())))
			}
		}
		return nil
	})
	return o
}
