package client

import "github.com/fotastack/fota/lwm2m"

// Connectivity Monitoring object (ID 4) resource IDs, LwM2M Core E.5.
const (
	ConnNetworkBearer   = 0
	ConnAvailableBearer = 1
	ConnSignalStrength  = 2
	ConnLinkQuality     = 3
	ConnIPAddresses     = 4
	ConnLinkUtilization = 6
	ConnAPN             = 7
	ConnCellID          = 8
)

// NewConnectivityObject makes the Connectivity Monitoring object (4) with
// instance 0: bearer (41 = Ethernet in the bearer table, our simulated
// device), radio signal strength in dBm and the IP address in use. The
// application updates values with Set; observations fire on change.
func NewConnectivityObject(bearer int64, ip string) *SimpleObject {
	o := NewSimpleObject(4, "1.3", false,
		ResourceDef{ID: ConnNetworkBearer, Name: "Network Bearer", Type: lwm2m.TypeInteger, Ops: OpRead},
		ResourceDef{ID: ConnAvailableBearer, Name: "Available Network Bearer", Type: lwm2m.TypeInteger, Ops: OpRead, Multiple: true},
		ResourceDef{ID: ConnSignalStrength, Name: "Radio Signal Strength", Type: lwm2m.TypeInteger, Ops: OpRead},
		ResourceDef{ID: ConnLinkQuality, Name: "Link Quality", Type: lwm2m.TypeInteger, Ops: OpRead},
		ResourceDef{ID: ConnIPAddresses, Name: "IP Addresses", Type: lwm2m.TypeString, Ops: OpRead, Multiple: true},
		ResourceDef{ID: ConnLinkUtilization, Name: "Link Utilization", Type: lwm2m.TypeUnsignedInteger, Ops: OpRead},
		ResourceDef{ID: ConnAPN, Name: "APN", Type: lwm2m.TypeString, Ops: OpRead, Multiple: true},
		ResourceDef{ID: ConnCellID, Name: "Cell ID", Type: lwm2m.TypeInteger, Ops: OpRead},
	)
	o.AddInstance(0, map[uint16]lwm2m.Value{
		ConnNetworkBearer:  lwm2m.Integer(bearer),
		ConnSignalStrength: lwm2m.Integer(-70),
		ConnLinkQuality:    lwm2m.Integer(100),
	})
	_ = o.SetMultiple(lwm2m.ResourcePath(4, 0, ConnAvailableBearer), map[uint16]lwm2m.Value{0: lwm2m.Integer(bearer)})
	_ = o.SetMultiple(lwm2m.ResourcePath(4, 0, ConnIPAddresses), map[uint16]lwm2m.Value{0: lwm2m.String(ip)})
	return o
}
