package client

import "github.com/fotastack/fota/lwm2m"

// Firmware Update object (ID 5, version 1.1) resource IDs, LwM2M Core E.6.
const (
	FwPackage         = 0
	FwPackageURI      = 1
	FwUpdate          = 2
	FwState           = 3
	FwUpdateResult    = 5
	FwPackageName     = 6
	FwPackageVersion  = 7
	FwProtocolSupport = 8
	FwDeliveryMethod  = 9
)

// FirmwareObjectVersion is the Firmware Update object version the client
// implements and announces (</5>;ver=1.1), here and in package firmware.
const FirmwareObjectVersion = "1.1"

// Firmware Update states (/5/0/3) and delivery methods (/5/0/9).
const (
	FwStateIdle        = 0
	FwStateDownloading = 1
	FwStateDownloaded  = 2
	FwStateUpdating    = 3

	FwDeliveryPull = 0
	FwDeliveryPush = 1
	FwDeliveryBoth = 2
)

// NewFirmwareObject makes the Firmware Update object (5) with its state
// resources only: State Idle, Update Result 0, Protocol Support CoAP and
// CoAPS, Delivery Method both, and a stored Package URI. The state machine
// (download, install) is issue 7's: it replaces this object with its own
// implementation through Client.SetObject.
func NewFirmwareObject() *SimpleObject {
	o := newBuiltinObject(5, FirmwareObjectVersion, FwPackage, FwPackageURI, FwUpdate, FwState, FwUpdateResult,
		FwPackageName, FwPackageVersion, FwProtocolSupport, FwDeliveryMethod)
	o.AddInstance(0, map[uint16]lwm2m.Value{
		FwPackageURI:     lwm2m.String(""),
		FwState:          lwm2m.Integer(FwStateIdle),
		FwUpdateResult:   lwm2m.Integer(0),
		FwPackageName:    lwm2m.String(""),
		FwPackageVersion: lwm2m.String(""),
		FwDeliveryMethod: lwm2m.Integer(FwDeliveryBoth),
	})
	// Protocol Support: 0 CoAP, 1 CoAPS (LwM2M Core E.6, resource 8).
	_ = o.SetMultiple(lwm2m.ResourcePath(5, 0, FwProtocolSupport), map[uint16]lwm2m.Value{0: lwm2m.Integer(0), 1: lwm2m.Integer(1)})
	return o
}
