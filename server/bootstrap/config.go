package bootstrap

import (
	"errors"
	"fmt"
	"net/url"
	"sort"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/store"
)

// ErrBadConfig marks a bootstrap configuration that cannot be
// written to a device as it stands (the HTTP API answers it with 400).
var ErrBadConfig = errors.New("bad bootstrap configuration")

var modeNumbers = map[string]int64{ModePSK: 0, ModeRPK: 1, ModeX509: 2, ModeNoSec: 3}

// Config is what the bootstrap server writes to one device (kept in the
// store; its JSON shape follows Leshan's bootstrap demo).
type Config = store.BootstrapConfig

// Security is one Security object instance (LwM2M Core E.1).
type Security = store.BootstrapSecurity

// ServerAccount is one Server object instance (LwM2M Core E.2).
type ServerAccount = store.BootstrapServerAccount

// ACL is one Access Control object instance (LwM2M Core E.3).
type ACL = store.BootstrapACL

// HexBytes is a byte string that reads and writes as hex in JSON.
type HexBytes = store.HexBytes

// Security modes, in Leshan's spelling.
const (
	ModePSK   = store.ModePSK
	ModeRPK   = store.ModeRPK
	ModeX509  = store.ModeX509
	ModeNoSec = store.ModeNoSec
)

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
func Validate(c *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
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
func securityEntries(s *Security, inst uint16) []lwm2m.Entry {
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
func serverEntries(s *ServerAccount, inst uint16) []lwm2m.Entry {
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
func aclEntries(a *ACL, inst uint16) []lwm2m.Entry {
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
func Entries(c *Config) []lwm2m.Entry {
	var out []lwm2m.Entry
	for _, i := range sortedIDs(c.Security) {
		out = append(out, securityEntries(c.Security[i], i)...)
	}
	for _, i := range sortedIDs(c.Servers) {
		out = append(out, serverEntries(c.Servers[i], i)...)
	}
	for _, i := range sortedIDs(c.ACLs) {
		out = append(out, aclEntries(c.ACLs[i], i)...)
	}
	return out
}
