package client

// Access Control object (ID 2) resource IDs, LwM2M Core E.3.
const (
	acObjectID   = 0
	acInstanceID = 1
	acACL        = 2
	acOwner      = 3
)

// accessControlVersion is the Access Control object version the client
// implements: 1.0, not announced (LwM2M Core 6.2.1: ver= only above 1.0).
const accessControlVersion = "1.0"

// newAccessControlObject makes the Access Control object (2) with no
// instances. installAccounts fills it with what bootstrap provisioned;
// the client shows it to the DM server but does not enforce it.
func newAccessControlObject() *SimpleObject {
	return newBuiltinObject(2, accessControlVersion, acObjectID, acInstanceID, acACL, acOwner)
}
