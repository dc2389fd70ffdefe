package client

import "github.com/fotastack/fota/lwm2m"

// Server object (ID 1) resource IDs, LwM2M Core E.2.
const (
	SrvShortServerID     = 0
	SrvLifetime          = 1
	SrvDefaultPmin       = 2
	SrvDefaultPmax       = 3
	SrvDisable           = 4
	SrvDisableTimeout    = 5
	SrvNotificationStore = 6
	SrvBinding           = 7
	SrvUpdateTrigger     = 8
	SrvBootstrapTrigger  = 9
)

// serverVersion is the Server object version the client implements: 1.2
// is defined for LwM2M 1.2, later than this client.
const serverVersion = "1.1"

// NewServerObject makes the Server object (1) with one instance for the
// server account: short server ID, lifetime in seconds and binding. The
// client wires the executable resources (Registration Update Trigger,
// Bootstrap-Request Trigger) and reacts to lifetime writes.
func NewServerObject(shortID int64, lifetime int64, binding string) *SimpleObject {
	o := newBuiltinObject(1, serverVersion, SrvShortServerID, SrvLifetime, SrvDefaultPmin, SrvDefaultPmax,
		SrvDisable, SrvNotificationStore, SrvBinding, SrvUpdateTrigger, SrvBootstrapTrigger)
	o.AddInstance(0, map[uint16]lwm2m.Value{
		SrvShortServerID:     lwm2m.Integer(shortID),
		SrvLifetime:          lwm2m.Integer(lifetime),
		SrvNotificationStore: lwm2m.Boolean(true),
		SrvBinding:           lwm2m.String(binding),
	})
	return o
}
