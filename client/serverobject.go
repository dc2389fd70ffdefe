package client

import "github.com/fotastack/fota/lwm2m"

// Server object (ID 1) resource IDs, LwM2M Core E.2.
const (
	SrvShortServerID     = 0
	SrvLifetime          = 1
	SrvDefaultPmin       = 2
	SrvDefaultPmax       = 3
	SrvDisable           = 4
	SrvNotificationStore = 6
	SrvBinding           = 7
	SrvUpdateTrigger     = 8
	SrvBootstrapTrigger  = 9
)

// NewServerObject makes the Server object (1) with one instance for the
// server account: short server ID, lifetime in seconds and binding. The
// client wires the executable resources (Registration Update Trigger,
// Bootstrap-Request Trigger) and reacts to lifetime writes.
func NewServerObject(shortID int64, lifetime int64, binding string) *SimpleObject {
	o := NewSimpleObject(1, "1.1", true,
		ResourceDef{ID: SrvShortServerID, Name: "Short Server ID", Type: lwm2m.TypeInteger, Ops: OpRead},
		ResourceDef{ID: SrvLifetime, Name: "Lifetime", Type: lwm2m.TypeInteger, Ops: OpReadWrite},
		ResourceDef{ID: SrvDefaultPmin, Name: "Default Minimum Period", Type: lwm2m.TypeInteger, Ops: OpReadWrite},
		ResourceDef{ID: SrvDefaultPmax, Name: "Default Maximum Period", Type: lwm2m.TypeInteger, Ops: OpReadWrite},
		ResourceDef{ID: SrvDisable, Name: "Disable", Ops: OpExecute},
		ResourceDef{ID: SrvNotificationStore, Name: "Notification Storing When Disabled or Offline", Type: lwm2m.TypeBoolean, Ops: OpReadWrite},
		ResourceDef{ID: SrvBinding, Name: "Binding", Type: lwm2m.TypeString, Ops: OpReadWrite},
		ResourceDef{ID: SrvUpdateTrigger, Name: "Registration Update Trigger", Ops: OpExecute},
		ResourceDef{ID: SrvBootstrapTrigger, Name: "Bootstrap-Request Trigger", Ops: OpExecute},
	)
	o.AddInstance(0, map[uint16]lwm2m.Value{
		SrvShortServerID:     lwm2m.Integer(shortID),
		SrvLifetime:          lwm2m.Integer(lifetime),
		SrvNotificationStore: lwm2m.Boolean(true),
		SrvBinding:           lwm2m.String(binding),
	})
	return o
}
