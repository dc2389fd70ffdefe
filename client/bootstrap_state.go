package client

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/lwm2m"
)

// The objects a bootstrap server provisions on this device: Security (0),
// Server (1) and Access Control (2), and the resources of each the device
// keeps (LwM2M Core E.1 to E.3); a write of any other resource is refused
// (the device has nowhere to keep it). Their types are those of the
// objects' models (Model), as for every object of the client.
var bootstrapResources = map[uint16][]uint16{
	0: {SecServerURI, SecBootstrapServer, SecMode, SecPublicKeyOrID, SecServerPublicKey, SecSecretKey,
		SecShortServerID, SecClientHoldOffTime, SecBootstrapAccountTimeout, SecMatchingType,
		// The SMS resources (6 mode, 7 and 8 keys, 9 number), SNI (14) and
		// Certificate Usage (15) are kept, unused: Leshan's bootstrap server
		// writes whole Security instances with all of them, and a refused
		// resource fails the whole Bootstrap-Write.
		6, 7, 8, 9, 14, 15},
	1: {SrvShortServerID, SrvLifetime, SrvDefaultPmin, SrvDefaultPmax, SrvDisableTimeout,
		SrvNotificationStore, SrvBinding},
	2: {acObjectID, acInstanceID, acACL, acOwner},
}

// bootstrapVersions are the object versions of those objects, the ones
// NewSecurityObject, NewServerObject and the Access Control object of
// installAccounts implement.
var bootstrapVersions = map[uint16]string{0: securityVersion, 1: serverVersion, 2: accessControlVersion}

// bootstrapTypes maps /o/0/r of every kept resource to its type.
var bootstrapTypes = lwm2m.TypeMap{}

func init() {
	for o, rs := range bootstrapResources {
		_, defs := builtinDefs(o, bootstrapVersions[o], rs...)
		for _, d := range defs {
			bootstrapTypes[lwm2m.ResourcePath(o, 0, d.ID)] = d.Type
		}
	}
}

// bootstrapResourceType types the resources of objects 0..2 in any instance.
type bootstrapResolver struct{}

func (bootstrapResolver) ResourceType(p lwm2m.Path) (lwm2m.Type, bool) {
	t, ok := bootstrapTypes[lwm2m.ResourcePath(p.Object(), 0, p.Resource())]
	return t, ok
}

// Limits of the device's account storage, like a small flash sector.
const (
	maxAccountInstances = 8    // per object
	maxAccountValue     = 2048 // bytes of one opaque or string value
)

// ErrInconsistent is a provisioned configuration the device cannot use:
// Bootstrap-Finish answers it with 4.06 Not Acceptable (LwM2M Core
// 6.1.7.7) and nothing of it is kept.
var ErrInconsistent = errors.New("bootstrap configuration inconsistent")

// Accounts are the device's Security, Server and Access Control
// instances: what bootstrap provisions and the device keeps across
// reboots. The zero value holds nothing.
type Accounts struct {
	objs map[uint16]map[uint16]map[lwm2m.Path]lwm2m.Value // object -> instance -> resource (instance) path -> value
}

// NewFactoryAccounts is a device fresh from the factory: one Security
// instance (0) for the bootstrap server and nothing else.
func NewFactoryAccounts(bc BootstrapConfig) *Accounts {
	a := &Accounts{}
	mode := int64(SecurityModeNoSec)
	if bc.PSKIdentity != "" {
		mode = SecurityModePSK
	}
	a.set(0, 0, map[uint16]lwm2m.Value{
		SecServerURI: lwm2m.String(bc.URI), SecBootstrapServer: lwm2m.Boolean(true),
		SecMode: lwm2m.Integer(mode), SecPublicKeyOrID: lwm2m.Opaque([]byte(bc.PSKIdentity)),
		SecServerPublicKey: lwm2m.Opaque([]byte{}), SecSecretKey: lwm2m.Opaque(append([]byte{}, bc.PSKKey...)),
	})
	return a
}

func (a *Accounts) set(o, i uint16, vals map[uint16]lwm2m.Value) {
	inst := a.instance(o, i)
	for r, v := range vals {
		inst[lwm2m.ResourcePath(o, i, r)] = v
	}
}

func (a *Accounts) instance(o, i uint16) map[lwm2m.Path]lwm2m.Value {
	if a.objs == nil {
		a.objs = map[uint16]map[uint16]map[lwm2m.Path]lwm2m.Value{}
	}
	if a.objs[o] == nil {
		a.objs[o] = map[uint16]map[lwm2m.Path]lwm2m.Value{}
	}
	if a.objs[o][i] == nil {
		a.objs[o][i] = map[lwm2m.Path]lwm2m.Value{}
	}
	return a.objs[o][i]
}

// Clone is a deep copy (values are immutable and shared).
func (a *Accounts) Clone() *Accounts {
	b := &Accounts{}
	for o, insts := range a.objs {
		for i, vals := range insts {
			dst := b.instance(o, i)
			for p, v := range vals {
				dst[p] = v
			}
		}
	}
	return b
}

// Instances lists the instance IDs of object o in ascending order.
func (a *Accounts) Instances(o uint16) []uint16 {
	var ids []uint16
	for i := range a.objs[o] {
		ids = append(ids, i)
	}
	sort.Slice(ids, func(x, y int) bool { return ids[x] < ids[y] })
	return ids
}

// Get returns the value at resource path p.
func (a *Accounts) Get(p lwm2m.Path) (lwm2m.Value, bool) {
	v, ok := a.objs[p.Object()][p.Instance()][p]
	return v, ok
}

// Entries returns the values below p (an object or instance path, or
// Root for all) in path order.
func (a *Accounts) Entries(p lwm2m.Path) []lwm2m.Entry {
	var out []lwm2m.Entry
	for _, insts := range a.objs {
		for _, vals := range insts {
			for q, v := range vals {
				if p.Contains(q) {
					out = append(out, lwm2m.Entry{Path: q, Value: v})
				}
			}
		}
	}
	sort.Slice(out, func(x, y int) bool { return out[x].Path.Less(out[y].Path) })
	return out
}

// isBootstrapInstance reports whether Security instance i is the
// bootstrap server's account.
func (a *Accounts) isBootstrapInstance(i uint16) bool {
	v, ok := a.Get(lwm2m.ResourcePath(0, i, SecBootstrapServer))
	return ok && v.Bool()
}

// write stores decoded entries (all under object 0..2) as a
// Bootstrap-Write does: each written resource replaces the one stored,
// instances are created when missing (LwM2M Core 5.2.7.4).
func (a *Accounts) write(entries []lwm2m.Entry) error {
	for _, e := range entries {
		if e.Path.Len() < 3 || e.Path.Object() > 2 {
			return fmt.Errorf("%v: the device keeps only objects 0, 1, 2 from bootstrap: %w", e.Path, ErrNotFound)
		}
		if _, ok := (bootstrapResolver{}).ResourceType(e.Path); !ok {
			return fmt.Errorf("%v: resource not supported by this device: %w", e.Path, ErrNotFound)
		}
		n := len(e.Value.Bytes())
		if t := e.Value.Type(); t == lwm2m.TypeString || t == lwm2m.TypeCoreLnk {
			n = len(e.Value.Str())
		}
		if n > maxAccountValue {
			return fmt.Errorf("%v: value of %d bytes, the device stores at most %d: %w", e.Path, n, maxAccountValue, lwm2m.NewError(codes.RequestEntityTooLarge, "too large"))
		}
		if e.Path.Len() == 4 && !(e.Path.Object() == 2 && e.Path.Resource() == 2) {
			return fmt.Errorf("%v: not a multiple-instance resource: %w", e.Path, ErrBadRequest)
		}
	}
	for _, e := range entries {
		if _, ok := a.objs[e.Path.Object()][e.Path.Instance()]; !ok && len(a.objs[e.Path.Object()]) >= maxAccountInstances {
			return fmt.Errorf("%v: the device stores at most %d instances of object %d: %w", e.Path, maxAccountInstances, e.Path.Object(), lwm2m.NewError(codes.InternalServerError, "storage full"))
		}
		inst := a.instance(e.Path.Object(), e.Path.Instance())
		res := lwm2m.ResourcePath(e.Path.Object(), e.Path.Instance(), e.Path.Resource())
		for q := range inst {
			if res.Contains(q) {
				delete(inst, q)
			}
		}
	}
	for _, e := range entries {
		a.instance(e.Path.Object(), e.Path.Instance())[e.Path] = e.Value
	}
	return nil
}

// delete is Bootstrap-Delete (LwM2M Core 5.2.7.5): "/" or an object or
// instance of 0..2; the bootstrap server's own Security instance stays.
func (a *Accounts) delete(p lwm2m.Path) error {
	if p.Len() > 2 {
		return fmt.Errorf("bootstrap-delete %v: only objects and instances can be deleted: %w", p, ErrBadRequest)
	}
	if p.Len() >= 1 && p.Object() > 2 {
		// Other objects are the device's own; nothing is deleted there.
		return nil
	}
	for o, insts := range a.objs {
		for i := range insts {
			if !p.Contains(lwm2m.InstancePath(o, i)) {
				continue
			}
			if o == 0 && a.isBootstrapInstance(i) {
				if p.Len() == 2 {
					return fmt.Errorf("bootstrap-delete %v: the bootstrap server account cannot be deleted: %w", p, ErrBadRequest)
				}
				continue
			}
			delete(insts, i)
		}
	}
	return nil
}

// DMAccount is one management server account: the Security and Server
// instances that share a Short Server ID.
type DMAccount struct {
	URI         string
	Mode        int64
	PSKIdentity string
	PSKKey      []byte
	// Certificate, Key and ServerCert are the DER certificate, PKCS#8
	// private key and server (or CA) certificate of X.509 mode.
	Certificate, Key, ServerCert []byte
	ShortID                      int64
	Lifetime                     int64
	Binding                      string
	SecInstance                  uint16
	SrvInstance                  uint16
}

// Check is what Bootstrap-Finish verifies (LwM2M Core 6.1.7.7): at least
// one server account whose Security instance exists and has usable keys.
// It returns the first such account.
func (a *Accounts) Check() (DMAccount, error) {
	bySSID := map[int64]uint16{}
	for _, i := range a.Instances(0) {
		if a.isBootstrapInstance(i) {
			continue
		}
		ssid, ok := a.Get(lwm2m.ResourcePath(0, i, SecShortServerID))
		if !ok {
			return DMAccount{}, fmt.Errorf("%w: security instance %d has no short server id", ErrInconsistent, i)
		}
		bySSID[ssid.Int()] = i
	}
	servers := a.Instances(1)
	if len(servers) == 0 {
		return DMAccount{}, fmt.Errorf("%w: no server account (object 1 is empty)", ErrInconsistent)
	}
	var first *DMAccount
	for _, si := range servers {
		ssidV, ok := a.Get(lwm2m.ResourcePath(1, si, SrvShortServerID))
		if !ok {
			return DMAccount{}, fmt.Errorf("%w: server instance %d has no short server id", ErrInconsistent, si)
		}
		i, ok := bySSID[ssidV.Int()]
		if !ok {
			return DMAccount{}, fmt.Errorf("%w: server instance %d (short id %d) has no security instance", ErrInconsistent, si, ssidV.Int())
		}
		acc := DMAccount{ShortID: ssidV.Int(), SecInstance: i, SrvInstance: si, Binding: "U", Lifetime: 300}
		if v, ok := a.Get(lwm2m.ResourcePath(0, i, SecServerURI)); ok {
			acc.URI = v.Str()
		}
		if u, err := url.Parse(acc.URI); err != nil || (u.Scheme != "coap" && u.Scheme != "coaps") || u.Hostname() == "" {
			return DMAccount{}, fmt.Errorf("%w: security instance %d: server URI %q is not a coap/coaps URI", ErrInconsistent, i, acc.URI)
		}
		mode, _ := a.Get(lwm2m.ResourcePath(0, i, SecMode))
		acc.Mode = mode.Int()
		id, _ := a.Get(lwm2m.ResourcePath(0, i, SecPublicKeyOrID))
		key, _ := a.Get(lwm2m.ResourcePath(0, i, SecSecretKey))
		acc.PSKIdentity, acc.PSKKey = string(id.Bytes()), key.Bytes()
		switch acc.Mode {
		case SecurityModePSK:
			if len(acc.PSKIdentity) == 0 || len(acc.PSKKey) == 0 {
				return DMAccount{}, fmt.Errorf("%w: security instance %d is in PSK mode without identity or key", ErrInconsistent, i)
			}
		case SecurityModeCertificate:
			srvKey, _ := a.Get(lwm2m.ResourcePath(0, i, SecServerPublicKey))
			acc.Certificate, acc.Key, acc.ServerCert = id.Bytes(), key.Bytes(), srvKey.Bytes()
			acc.PSKIdentity, acc.PSKKey = "", nil
			if _, err := x509.ParseCertificate(acc.Certificate); err != nil {
				return DMAccount{}, fmt.Errorf("%w: security instance %d: X.509 mode, but /0/%d/3 is no DER certificate: %v", ErrInconsistent, i, i, err)
			}
			if _, err := x509.ParsePKCS8PrivateKey(acc.Key); err != nil {
				return DMAccount{}, fmt.Errorf("%w: security instance %d: X.509 mode, but /0/%d/5 is no PKCS#8 key: %v", ErrInconsistent, i, i, err)
			}
			// Without the server's certificate the device could not tell
			// its server from any other (LwM2M Core E.1, resource 4).
			if _, err := x509.ParseCertificate(acc.ServerCert); err != nil {
				return DMAccount{}, fmt.Errorf("%w: security instance %d: X.509 mode, but /0/%d/4 is no DER server certificate: %v", ErrInconsistent, i, i, err)
			}
		case SecurityModeNoSec:
		default:
			return DMAccount{}, fmt.Errorf("%w: security instance %d: security mode %d is not supported by this device", ErrInconsistent, i, acc.Mode)
		}
		if u, _ := url.Parse(acc.URI); (u.Scheme == "coaps") != (acc.Mode != SecurityModeNoSec) {
			return DMAccount{}, fmt.Errorf("%w: security instance %d: URI %q does not fit security mode %d", ErrInconsistent, i, acc.URI, acc.Mode)
		}
		if v, ok := a.Get(lwm2m.ResourcePath(1, si, SrvLifetime)); ok && v.Int() > 0 {
			acc.Lifetime = v.Int()
		}
		if v, ok := a.Get(lwm2m.ResourcePath(1, si, SrvBinding)); ok && v.Str() != "" {
			acc.Binding = v.Str()
		}
		if first == nil {
			first = &acc
		}
	}
	return *first, nil
}

// accountsFile is the file in the state directory that stands for the
// device's non-volatile account storage.
const accountsFile = "accounts.json"

type storedValue struct {
	Path  string `json:"path"`
	Type  string `json:"type"`
	Value string `json:"value"` // text/plain form; opaque as base64
}

// MarshalJSON stores the accounts as a flat list of typed values.
func (a *Accounts) MarshalJSON() ([]byte, error) {
	out := []storedValue{}
	for _, e := range a.Entries(lwm2m.Root) {
		out = append(out, storedValue{Path: e.Path.String(), Type: e.Value.Type().String(), Value: e.Value.Text()})
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (a *Accounts) UnmarshalJSON(data []byte) error {
	var in []storedValue
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*a = Accounts{}
	for _, s := range in {
		p, err := lwm2m.ParsePath(s.Path)
		if err != nil || p.Len() < 3 || p.Object() > 2 {
			return fmt.Errorf("stored account path %q: not a resource of objects 0..2", s.Path)
		}
		t, err := lwm2m.ParseType(s.Type)
		if err != nil {
			return fmt.Errorf("stored account %s: %w", s.Path, err)
		}
		v, err := lwm2m.ParseText(t, s.Value)
		if err != nil {
			return fmt.Errorf("stored account %s: %w", s.Path, err)
		}
		a.instance(p.Object(), p.Instance())[p] = v
	}
	return nil
}

// LoadAccounts reads the accounts kept in dir; (nil, nil) when the device
// has none yet (never bootstrapped).
func LoadAccounts(dir string) (*Accounts, error) {
	data, err := os.ReadFile(filepath.Join(dir, accountsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	var a Accounts
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("read accounts %s: %w", filepath.Join(dir, accountsFile), err)
	}
	return &a, nil
}

// SaveAccounts writes the accounts to dir atomically: a temporary file,
// fsynced, renamed over the old one, and the directory fsynced, so that a
// power cut leaves either the old accounts or the new ones.
func SaveAccounts(dir string, a *Accounts) error {
	data, err := json.MarshalIndent(a, "", " ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, accountsFile+".tmp*")
	if err != nil {
		return fmt.Errorf("save accounts: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("save accounts: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, accountsFile)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save accounts: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
