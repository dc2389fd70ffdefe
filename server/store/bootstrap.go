package store

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// HexBytes is a byte string that reads and writes as hex in JSON: keys and
// identities in the API are typed by people and scripts.
type HexBytes []byte

// MarshalJSON implements json.Marshaler.
func (b HexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(b)) }

// UnmarshalJSON implements json.Unmarshaler.
func (b *HexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("hex string expected: %w", err)
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("not hex: %w", err)
	}
	*b = v
	return nil
}

// Security modes of a bootstrap security instance, in Leshan's spelling;
// the numbers are the values of /0/x/2 (LwM2M Core E.1).
const (
	ModePSK   = "PSK"
	ModeRPK   = "RPK"
	ModeX509  = "X509"
	ModeNoSec = "NO_SEC"
)

// BootstrapConfig is what the bootstrap server does to one device: the
// paths it deletes first, then the Security (0), Server (1) and Access
// Control (2) instances it writes, keyed by instance ID. The JSON shape
// follows Leshan's bootstrap demo.
type BootstrapConfig struct {
	ToDelete []string                           `json:"toDelete"`
	Security map[uint16]*BootstrapSecurity      `json:"security"`
	Servers  map[uint16]*BootstrapServerAccount `json:"servers"`
	ACLs     map[uint16]*BootstrapACL           `json:"acls,omitempty"`
}

// BootstrapSecurity is one Security object instance (LwM2M Core E.1).
type BootstrapSecurity struct {
	// URI is the server's URI; empty for a DM account means "this
	// server's own coaps URI" (filled in when the config is stored).
	URI             string `json:"uri"`
	BootstrapServer bool   `json:"bootstrapServer"`
	// SecurityMode is PSK, RPK, X509 or NO_SEC.
	SecurityMode    string   `json:"securityMode"`
	PublicKeyOrID   HexBytes `json:"publicKeyOrId,omitempty"`
	ServerPublicKey HexBytes `json:"serverPublicKey,omitempty"`
	SecretKey       HexBytes `json:"secretKey,omitempty"`
	// ServerID is the Short Server ID (/0/x/10) linking the account to a
	// Server object instance.
	ServerID uint16 `json:"serverId"`
	// PSKIdentity is the PSK identity as text; it sets PublicKeyOrID.
	PSKIdentity string `json:"pskIdentity,omitempty"`
	// GeneratePSK asks the server, when the config is stored, to make a
	// fresh PSK identity and key for this account and to enter them in the
	// DM server's security store in the same step. The stored config holds
	// the generated values and no longer the flag.
	GeneratePSK bool `json:"generatePsk,omitempty"`
}

// BootstrapServerAccount is one Server object instance (LwM2M Core E.2).
type BootstrapServerAccount struct {
	ShortID          uint16  `json:"shortId"`
	Lifetime         uint32  `json:"lifetime"`
	DefaultMinPeriod *uint32 `json:"defaultMinPeriod,omitempty"`
	DefaultMaxPeriod *uint32 `json:"defaultMaxPeriod,omitempty"`
	NotifIfDisabled  bool    `json:"notifIfDisabled"`
	Binding          string  `json:"binding"`
}

// BootstrapACL is one Access Control object instance (LwM2M Core E.3).
type BootstrapACL struct {
	ObjectID           uint16            `json:"objectId"`
	ObjectInstanceID   uint16            `json:"objectInstanceId"`
	ACLs               map[uint16]uint16 `json:"acls"` // short server ID -> access bits
	AccessControlOwner uint16            `json:"accessControlOwner"`
}

// BootstrapStore keeps what the bootstrap server writes to each device and
// the credentials devices bootstrap with. Bootstrap credentials are kept
// apart from the DM server's (CredentialStore): the bootstrap identity of a
// device must never open a session at the DM server.
type BootstrapStore interface {
	// PutBootstrapConfig stores the configuration of endpoint ep, replacing any.
	PutBootstrapConfig(ep string, c *BootstrapConfig) error
	// BootstrapConfig returns the configuration of ep, or ErrNotFound.
	BootstrapConfig(ep string) (*BootstrapConfig, error)
	// DeleteBootstrapConfig removes the configuration of ep, or returns ErrNotFound.
	DeleteBootstrapConfig(ep string) error
	// BootstrapConfigs returns all configurations by endpoint.
	BootstrapConfigs() (map[string]*BootstrapConfig, error)

	// PutBootstrapCredential inserts or replaces the bootstrap credential
	// of c.Endpoint; a PSK identity of another endpoint's bootstrap
	// credential is refused with ErrExists.
	PutBootstrapCredential(c Credential) error
	// BootstrapCredential returns the bootstrap credential of ep, or ErrNotFound.
	BootstrapCredential(ep string) (Credential, error)
	// BootstrapCredentialByIdentity returns the bootstrap credential with
	// this PSK identity, or ErrNotFound.
	BootstrapCredentialByIdentity(identity string) (Credential, error)
	// DeleteBootstrapCredential removes the bootstrap credential of ep, or
	// returns ErrNotFound.
	DeleteBootstrapCredential(ep string) error
	// BootstrapCredentials returns all bootstrap credentials, in no set order.
	BootstrapCredentials() ([]Credential, error)
}
