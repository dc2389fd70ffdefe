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

// connectivityVersion is the Connectivity Monitoring object version the
// client implements and announces (</4>;ver=1.3).
const connectivityVersion = "1.3"

// NewConnectivityObject makes the Connectivity Monitoring object (4) with
// instance 0: bearer (41 = Ethernet in the bearer table, our simulated
// device), radio signal strength in dBm and the IP address in use. The
// application updates values with Set; observations fire on change.
func NewConnectivityObject(bearer int64, ip string) *SimpleObject {
	o := newBuiltinObject(4, connectivityVersion, ConnNetworkBearer, ConnAvailableBearer, ConnSignalStrength,
		ConnLinkQuality, ConnIPAddresses, ConnLinkUtilization, ConnAPN, ConnCellID)
	o.AddInstance(0, map[uint16]lwm2m.Value{
		ConnNetworkBearer:  lwm2m.Integer(bearer),
		ConnSignalStrength: lwm2m.Integer(-70),
		ConnLinkQuality:    lwm2m.Integer(100),
	})
	_ = o.SetMultiple(lwm2m.ResourcePath(4, 0, ConnAvailableBearer), map[uint16]lwm2m.Value{0: lwm2m.Integer(bearer)})
	_ = o.SetMultiple(lwm2m.ResourcePath(4, 0, ConnIPAddresses), map[uint16]lwm2m.Value{0: lwm2m.String(ip)})
	return o
}
