package client

// Security object (ID 0) resource IDs, LwM2M Core E.1.
const (
	SecServerURI       = 0
	SecBootstrapServer = 1
	SecMode            = 2
	SecPublicKeyOrID   = 3
	SecServerPublicKey = 4
	SecSecretKey       = 5
	SecShortServerID   = 10

	SecClientHoldOffTime       = 11
	SecBootstrapAccountTimeout = 12
	SecMatchingType            = 13
)

// securityVersion is the Security object version the client implements:
// 1.2 is defined for LwM2M 1.1. The object is never announced (LwM2M Core
// 6.2.1), so its version does not reach the wire.
const securityVersion = "1.2"

// Security modes (resource /0/x/2).
const (
	SecurityModePSK          = 0
	SecurityModeRawPublicKey = 1
	SecurityModeCertificate  = 2
	SecurityModeNoSec        = 3
)

// NewSecurityObject makes the Security object (0). It holds the server
// URIs and keys; the LwM2M server may not read or write it (LwM2M Core
// E.1: only the bootstrap server may), which the client enforces. Its
// resources have no operations in the object definition for that reason;
// bootstrap writes go to Accounts, not through this object.
func NewSecurityObject() *SimpleObject {
	return newBuiltinObject(0, securityVersion, SecServerURI, SecBootstrapServer, SecMode, SecPublicKeyOrID,
		SecServerPublicKey, SecSecretKey, SecShortServerID)
}
