package client

import "github.com/fotastack/fota/lwm2m"

// Security object (ID 0) resource IDs, LwM2M Core E.1.
const (
	SecServerURI       = 0
	SecBootstrapServer = 1
	SecMode            = 2
	SecPublicKeyOrID   = 3
	SecServerPublicKey = 4
	SecSecretKey       = 5
	SecShortServerID   = 10
)

// Security modes (resource /0/x/2).
const (
	SecurityModePSK          = 0
	SecurityModeRawPublicKey = 1
	SecurityModeCertificate  = 2
	SecurityModeNoSec        = 3
)

// NewSecurityObject makes the Security object (0). It holds the server
// URIs and keys; the LwM2M server may not read or write it (LwM2M Core
// E.1: only the bootstrap server may), which the client enforces.
func NewSecurityObject() *SimpleObject {
	return NewSimpleObject(0, "1.1", true,
		ResourceDef{ID: SecServerURI, Name: "LWM2M Server URI", Type: lwm2m.TypeString, Ops: OpReadWrite},
		ResourceDef{ID: SecBootstrapServer, Name: "Bootstrap-Server", Type: lwm2m.TypeBoolean, Ops: OpReadWrite},
		ResourceDef{ID: SecMode, Name: "Security Mode", Type: lwm2m.TypeInteger, Ops: OpReadWrite},
		ResourceDef{ID: SecPublicKeyOrID, Name: "Public Key or Identity", Type: lwm2m.TypeOpaque, Ops: OpReadWrite},
		ResourceDef{ID: SecServerPublicKey, Name: "Server Public Key", Type: lwm2m.TypeOpaque, Ops: OpReadWrite},
		ResourceDef{ID: SecSecretKey, Name: "Secret Key", Type: lwm2m.TypeOpaque, Ops: OpReadWrite},
		ResourceDef{ID: SecShortServerID, Name: "Short Server ID", Type: lwm2m.TypeInteger, Ops: OpReadWrite},
	)
}
