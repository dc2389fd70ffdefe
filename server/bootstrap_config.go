package server

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"

	"github.com/fotastack/fota/lwm2m"
)

// ErrBootstrapConfig marks a bootstrap configuration that cannot be
// written to a device as it stands (the HTTP API answers it with 400).
var ErrBootstrapConfig = errors.New("bad bootstrap configuration")

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

var modeNumbers = map[string]int64{ModePSK: 0, ModeRPK: 1, ModeX509: 2, ModeNoSec: 3}

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

// Limits that keep one configuration small (it is written to a
// constrained device in a few requests).
const (
	maxBootstrapInstances = 8
	maxBootstrapDeletes   = 16
	maxBootstrapKey       = 1024
)

// Validate checks the configuration as stored: every server account has a
// security instance with its short ID, keys are present for the modes that
// need them, URIs are CoAP URIs. It fails on what would make the device's
// Bootstrap-Finish fail (LwM2M Core 6.1.7.7), so a bad config is refused
// when it is PUT rather than when a device is waiting.
func (c *BootstrapConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBootstrapConfig, fmt.Sprintf(format, args...))
	}
	if len(c.ToDelete) > maxBootstrapDeletes {
		return bad("%d paths to delete, at most %d", len(c.ToDelete), maxBootstrapDeletes)
	}
	for _, p := range c.ToDelete {
		if _, err := lwm2m.ParsePath(p); err != nil {
			return bad("toDelete %q: %v", p, err)
		}
	}
	if len(c.Security) > maxBootstrapInstances || len(c.Servers) > maxBootstrapInstances || len(c.ACLs) > maxBootstrapInstances {
		return bad("at most %d instances per object", maxBootstrapInstances)
	}
	dmIDs := map[uint16]uint16{} // short server ID -> security instance
	for _, i := range sortedIDs(c.Security) {
		s := c.Security[i]
		if s == nil {
			return bad("security instance %d is empty", i)
		}
		mode, ok := modeNumbers[s.SecurityMode]
		if !ok {
			return bad("security instance %d: security mode %q is not PSK, RPK, X509 or NO_SEC", i, s.SecurityMode)
		}
		if s.PSKIdentity != "" {
			s.PublicKeyOrID = HexBytes(s.PSKIdentity)
			s.PSKIdentity = ""
		}
		if len(s.PublicKeyOrID) > maxBootstrapKey || len(s.SecretKey) > maxBootstrapKey || len(s.ServerPublicKey) > 4*maxBootstrapKey {
			return bad("security instance %d: key material too long", i)
		}
		if s.URI == "" {
			return bad("security instance %d has no server URI", i)
		}
		u, err := url.Parse(s.URI)
		if err != nil || (u.Scheme != "coap" && u.Scheme != "coaps") || u.Hostname() == "" {
			return bad("security instance %d: URI %q is not coap://host:port or coaps://host:port", i, s.URI)
		}
		if (u.Scheme == "coaps") != (mode != modeNumbers[ModeNoSec]) {
			return bad("security instance %d: URI scheme %s does not fit security mode %s", i, u.Scheme, s.SecurityMode)
		}
		if mode != modeNumbers[ModeNoSec] && !s.GeneratePSK && (len(s.PublicKeyOrID) == 0 || len(s.SecretKey) == 0) {
			return bad("security instance %d: mode %s needs publicKeyOrId and secretKey", i, s.SecurityMode)
		}
		if s.GeneratePSK && mode != modeNumbers[ModePSK] {
			return bad("security instance %d: generatePsk needs mode PSK", i)
		}
		if s.BootstrapServer {
			continue
		}
		if s.ServerID == 0 || s.ServerID == 65535 {
			return bad("security instance %d: short server id %d not in 1..65534", i, s.ServerID)
		}
		if j, dup := dmIDs[s.ServerID]; dup {
			return bad("security instances %d and %d share short server id %d", j, i, s.ServerID)
		}
		dmIDs[s.ServerID] = i
	}
	if len(c.Servers) == 0 {
		return bad("no server account: a device bootstrapped with it could register nowhere")
	}
	for _, i := range sortedIDs(c.Servers) {
		s := c.Servers[i]
		if s == nil {
			return bad("server instance %d is empty", i)
		}
		if _, ok := dmIDs[s.ShortID]; !ok {
			return bad("server instance %d names short server id %d, but no security instance has it", i, s.ShortID)
		}
		if s.Lifetime == 0 {
			s.Lifetime = 300
		}
		if s.Binding == "" {
			s.Binding = "U"
		}
	}
	for _, i := range sortedIDs(c.ACLs) {
		if c.ACLs[i] == nil {
			return bad("acl instance %d is empty", i)
		}
	}
	return nil
}

func sortedIDs[V any](m map[uint16]V) []uint16 {
	ids := make([]uint16, 0, len(m))
	for k := range m {
		ids = append(ids, k)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids
}

// securityEntries are the resources of Security instance inst.
func (s *BootstrapSecurity) entries(inst uint16) []lwm2m.Entry {
	p := func(r uint16) lwm2m.Path { return lwm2m.ResourcePath(0, inst, r) }
	out := []lwm2m.Entry{
		{Path: p(0), Value: lwm2m.String(s.URI)},
		{Path: p(1), Value: lwm2m.Boolean(s.BootstrapServer)},
		{Path: p(2), Value: lwm2m.Integer(modeNumbers[s.SecurityMode])},
		{Path: p(3), Value: lwm2m.Opaque(nonNil(s.PublicKeyOrID))},
		{Path: p(4), Value: lwm2m.Opaque(nonNil(s.ServerPublicKey))},
		{Path: p(5), Value: lwm2m.Opaque(nonNil(s.SecretKey))},
	}
	if !s.BootstrapServer {
		out = append(out, lwm2m.Entry{Path: p(10), Value: lwm2m.Integer(int64(s.ServerID))})
	}
	return out
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// entries are the resources of Server instance inst.
func (s *BootstrapServerAccount) entries(inst uint16) []lwm2m.Entry {
	p := func(r uint16) lwm2m.Path { return lwm2m.ResourcePath(1, inst, r) }
	out := []lwm2m.Entry{
		{Path: p(0), Value: lwm2m.Integer(int64(s.ShortID))},
		{Path: p(1), Value: lwm2m.Integer(int64(s.Lifetime))},
	}
	if s.DefaultMinPeriod != nil {
		out = append(out, lwm2m.Entry{Path: p(2), Value: lwm2m.Integer(int64(*s.DefaultMinPeriod))})
	}
	if s.DefaultMaxPeriod != nil {
		out = append(out, lwm2m.Entry{Path: p(3), Value: lwm2m.Integer(int64(*s.DefaultMaxPeriod))})
	}
	out = append(out,
		lwm2m.Entry{Path: p(6), Value: lwm2m.Boolean(s.NotifIfDisabled)},
		lwm2m.Entry{Path: p(7), Value: lwm2m.String(s.Binding)},
	)
	return out
}

// entries are the resources of Access Control instance inst.
func (a *BootstrapACL) entries(inst uint16) []lwm2m.Entry {
	p := func(r uint16) lwm2m.Path { return lwm2m.ResourcePath(2, inst, r) }
	out := []lwm2m.Entry{
		{Path: p(0), Value: lwm2m.Integer(int64(a.ObjectID))},
		{Path: p(1), Value: lwm2m.Integer(int64(a.ObjectInstanceID))},
	}
	for _, ssid := range sortedIDs(a.ACLs) {
		out = append(out, lwm2m.Entry{Path: lwm2m.ResourceInstancePath(2, inst, 2, ssid), Value: lwm2m.Integer(int64(a.ACLs[ssid]))})
	}
	out = append(out, lwm2m.Entry{Path: p(3), Value: lwm2m.Integer(int64(a.AccessControlOwner))})
	return out
}

// Entries is the whole configuration as the entries of a Bootstrap-Pack
// (LwM2M 1.2 Core 6.1.7.3): every instance, Security first.
func (c *BootstrapConfig) Entries() []lwm2m.Entry {
	var out []lwm2m.Entry
	for _, i := range sortedIDs(c.Security) {
		out = append(out, c.Security[i].entries(i)...)
	}
	for _, i := range sortedIDs(c.Servers) {
		out = append(out, c.Servers[i].entries(i)...)
	}
	for _, i := range sortedIDs(c.ACLs) {
		out = append(out, c.ACLs[i].entries(i)...)
	}
	return out
}
