package objects

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/fotastack/fota/lwm2m"
)

// span returns the IDs lo..hi without the ones in skip.
func span(lo, hi uint16, skip ...uint16) []uint16 {
	var ids []uint16
	for id := lo; id <= hi; id++ {
		if !slices.Contains(skip, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestBuiltinObjectsMatchSpec checks each built-in object's header and
// resource IDs against the OMA object definitions (LwM2M Core 1.2 and the
// OMA registry's DDF files).
func TestBuiltinObjectsMatchSpec(t *testing.T) {
	r := Default()
	cases := []struct {
		id        uint16
		name      string
		version   string
		urn       string
		multiple  bool
		mandatory bool
		resources []uint16
	}{
		{0, "LWM2M Security", "1.2", "urn:oma:lwm2m:oma:0:1.2", true, true, span(0, 30)},
		{1, "LwM2M Server", "1.2", "urn:oma:lwm2m:oma:1:1.2", true, true, span(0, 27)},
		{2, "LwM2M Access Control", "1.1", "urn:oma:lwm2m:oma:2:1.1", true, false, span(0, 3)},
		{3, "Device", "1.2", "urn:oma:lwm2m:oma:3:1.2", false, true, span(0, 22)},
		{4, "Connectivity Monitoring", "1.3", "urn:oma:lwm2m:oma:4:1.3", false, false, span(0, 13)},
		{5, "Firmware Update", "1.1", "urn:oma:lwm2m:oma:5:1.1", false, false, span(0, 13, 4)},
		{6, "Location", "1.1", "urn:oma:lwm2m:oma:6", false, false, span(0, 12, 7)},
		{7, "Connectivity Statistics", "1.0", "urn:oma:lwm2m:oma:7", false, false, span(0, 8)},
		{9, "LWM2M Software Management", "1.1", "urn:oma:lwm2m:oma:9:1.1", true, false, span(0, 22)},
	}
	var ids []uint16
	for _, c := range cases {
		ids = append(ids, c.id)
		t.Run(c.name, func(t *testing.T) {
			o, ok := r.Get(c.id)
			if !ok {
				t.Fatalf("object %d not in Default()", c.id)
			}
			got := fmt.Sprint(o.Name, o.Version, o.URN, o.Multiple, o.Mandatory)
			want := fmt.Sprint(c.name, c.version, c.urn, c.multiple, c.mandatory)
			if got != want {
				t.Errorf("header = %s, want %s", got, want)
			}
			if !slices.Equal(o.ResourceIDs(), c.resources) {
				t.Errorf("resources = %v, want %v", o.ResourceIDs(), c.resources)
			}
			for _, res := range o.Resources {
				if res.Executable() != (res.Type == lwm2m.TypeNone) {
					t.Errorf("resource %v: executable resources and only they have no type", res)
				}
			}
		})
	}
	var listed []uint16
	for _, o := range r.List() {
		listed = append(listed, o.ID)
	}
	if !slices.Equal(listed, ids) {
		t.Errorf("List() = %v, want %v", listed, ids)
	}
}

type resFact struct {
	path      string
	name      string
	ops       Operations
	typ       lwm2m.Type
	multiple  bool
	mandatory bool
	rng       string
	units     string
}

func checkFacts(t *testing.T, r *Registry, facts []resFact) {
	t.Helper()
	for _, f := range facts {
		res, ok := r.Resource(lwm2m.MustParsePath(f.path))
		if !ok {
			t.Errorf("%s: not defined", f.path)
			continue
		}
		got := resFact{f.path, res.Name, res.Operations, res.Type, res.Multiple, res.Mandatory, res.Range, res.Units}
		if got != f {
			t.Errorf("%s:\n got %+v\nwant %+v", f.path, got, f)
		}
	}
}

// TestFirmwareUpdateObjectMatchesSpec checks every resource of object 5
// version 1.1 (LwM2M Core 1.2 E.6 / OMA-SUP-XML_5-V1_1).
func TestFirmwareUpdateObjectMatchesSpec(t *testing.T) {
	S, M := false, true
	Opt, Mand := false, true
	checkFacts(t, Default(), []resFact{
		{"/5/0/0", "Package", W, lwm2m.TypeOpaque, S, Mand, "", ""},
		{"/5/0/1", "Package URI", RW, lwm2m.TypeString, S, Mand, "0..255", ""},
		{"/5/0/2", "Update", E, lwm2m.TypeNone, S, Mand, "", ""},
		{"/5/0/3", "State", R, lwm2m.TypeInteger, S, Mand, "0..3", ""},
		{"/5/0/5", "Update Result", R, lwm2m.TypeInteger, S, Mand, "0..11", ""},
		{"/5/0/6", "PkgName", R, lwm2m.TypeString, S, Opt, "0..255", ""},
		{"/5/0/7", "PkgVersion", R, lwm2m.TypeString, S, Opt, "0..255", ""},
		{"/5/0/8", "Firmware Update Protocol Support", R, lwm2m.TypeInteger, M, Opt, "0..5", ""},
		{"/5/0/9", "Firmware Update Delivery Method", R, lwm2m.TypeInteger, S, Mand, "0..2", ""},
		{"/5/0/10", "Cancel", E, lwm2m.TypeNone, S, Opt, "", ""},
		{"/5/0/11", "Severity", RW, lwm2m.TypeInteger, S, Opt, "0..2", ""},
		{"/5/0/12", "Last State Change Time", R, lwm2m.TypeTime, S, Opt, "", ""},
		{"/5/0/13", "Maximum Defer Period", RW, lwm2m.TypeUnsignedInteger, S, Opt, "", "s"},
	})
}

// TestCoreObjectResourcesMatchSpec spot-checks resources of the other
// built-in objects, chosen for the facts servers rely on.
func TestCoreObjectResourcesMatchSpec(t *testing.T) {
	S, M := false, true
	Opt, Mand := false, true
	checkFacts(t, Default(), []resFact{
		{"/0/0/0", "LWM2M Server URI", NoOps, lwm2m.TypeString, S, Mand, "0..255", ""},
		{"/0/0/1", "Bootstrap-Server", NoOps, lwm2m.TypeBoolean, S, Mand, "", ""},
		{"/0/0/2", "Security Mode", NoOps, lwm2m.TypeInteger, S, Mand, "0..4", ""},
		{"/0/0/3", "Public Key or Identity", NoOps, lwm2m.TypeOpaque, S, Mand, "", ""},
		{"/0/0/5", "Secret Key", NoOps, lwm2m.TypeOpaque, S, Mand, "", ""},
		{"/0/0/7", "SMS Binding Key Parameters", NoOps, lwm2m.TypeOpaque, S, Opt, "6", ""},
		{"/0/0/8", "SMS Binding Secret Key(s)", NoOps, lwm2m.TypeOpaque, S, Opt, "16,32,48", ""},
		{"/0/0/10", "Short Server ID", NoOps, lwm2m.TypeInteger, S, Opt, "1..65534", ""},
		{"/0/0/12", "Bootstrap-Server Account Timeout", NoOps, lwm2m.TypeInteger, S, Opt, "", "s"},
		{"/0/0/16", "DTLS/TLS Ciphersuite", NoOps, lwm2m.TypeUnsignedInteger, M, Opt, "", ""},
		{"/0/0/17", "OSCORE Security Mode", NoOps, lwm2m.TypeObjLnk, S, Opt, "", ""},
		{"/1/0/0", "Short Server ID", R, lwm2m.TypeInteger, S, Mand, "1..65534", ""},
		{"/1/0/1", "Lifetime", RW, lwm2m.TypeUnsignedInteger, S, Mand, "", "s"},
		{"/1/0/2", "Default Minimum Period", RW, lwm2m.TypeInteger, S, Opt, "", "s"},
		{"/1/0/4", "Disable", E, lwm2m.TypeNone, S, Opt, "", ""},
		{"/1/0/6", "Notification Storing When Disabled or Offline", RW, lwm2m.TypeBoolean, S, Mand, "", ""},
		{"/1/0/7", "Binding", RW, lwm2m.TypeString, S, Mand, "", ""},
		{"/1/0/8", "Registration Update Trigger", E, lwm2m.TypeNone, S, Mand, "", ""},
		{"/1/0/24", "Alternate APN Links", RW, lwm2m.TypeObjLnk, M, Opt, "", ""},
		{"/2/0/0", "Object ID", R, lwm2m.TypeInteger, S, Mand, "1..65534", ""},
		{"/2/0/2", "ACL", RW, lwm2m.TypeInteger, M, Opt, "0..31", ""},
		{"/2/0/3", "Access Control Owner", RW, lwm2m.TypeInteger, S, Mand, "0..65535", ""},
		{"/3/0/0", "Manufacturer", R, lwm2m.TypeString, S, Opt, "", ""},
		{"/3/0/3", "Firmware Version", R, lwm2m.TypeString, S, Opt, "", ""},
		{"/3/0/4", "Reboot", E, lwm2m.TypeNone, S, Mand, "", ""},
		{"/3/0/6", "Available Power Sources", R, lwm2m.TypeInteger, M, Opt, "0..7", ""},
		{"/3/0/9", "Battery Level", R, lwm2m.TypeInteger, S, Opt, "0..100", "/100"},
		{"/3/0/11", "Error Code", R, lwm2m.TypeInteger, M, Mand, "0..32", ""},
		{"/3/0/13", "Current Time", RW, lwm2m.TypeTime, S, Opt, "", ""},
		{"/3/0/16", "Supported Binding and Modes", R, lwm2m.TypeString, S, Mand, "", ""},
		{"/3/0/22", "ExtDevInfo", R, lwm2m.TypeObjLnk, M, Opt, "", ""},
		{"/4/0/0", "Network Bearer", R, lwm2m.TypeInteger, S, Mand, "0..50", ""},
		{"/4/0/4", "IP Addresses", R, lwm2m.TypeString, M, Mand, "", ""},
		{"/4/0/11", "SignalSNR", R, lwm2m.TypeInteger, S, Opt, "", "dB"},
		{"/6/0/0", "Latitude", RW, lwm2m.TypeFloat, S, Mand, "", "lat"},
		{"/6/0/5", "Timestamp", R, lwm2m.TypeTime, S, Mand, "", ""},
		{"/7/0/6", "Start", E, lwm2m.TypeNone, S, Mand, "", ""},
		{"/7/0/8", "Collection Period", RW, lwm2m.TypeInteger, S, Opt, "", "s"},
		{"/9/0/0", "PkgName", R, lwm2m.TypeString, S, Mand, "0..255 bytes", ""},
		{"/9/0/2", "Package", W, lwm2m.TypeOpaque, S, Opt, "", ""},
		{"/9/0/4", "Install", E, lwm2m.TypeNone, S, Mand, "", ""},
		{"/9/0/7", "Update State", R, lwm2m.TypeInteger, S, Mand, "0..4", ""},
		{"/9/0/12", "Activation State", R, lwm2m.TypeBoolean, S, Mand, "", ""},
		{"/9/0/17", "Software Component Link", R, lwm2m.TypeObjLnk, M, Opt, "", ""},
		{"/9/0/21", "Operational State", R, lwm2m.TypeUnsignedInteger, S, Mand, "0..15", ""},
	})
}

// TestServerObject11MatchesSpec checks the LwM2M Server object at object
// version 1.1 (OMA-SUP-XML_1-V1_1, LwM2M 1.1), which the registry keeps
// beside 1.2 because 1.2 is defined for LwM2M 1.2: in 1.1 Lifetime is an
// Integer (Unsigned Integer in 1.2), and resources 24 to 27 do not exist.
func TestServerObject11MatchesSpec(t *testing.T) {
	o, ok := Default().GetVersion(1, "1.1")
	if !ok {
		t.Fatal("LwM2M Server 1.1 not in Default()")
	}
	S, Opt, Mand := false, false, true
	for _, f := range []resFact{
		{"/1/0/0", "Short Server ID", R, lwm2m.TypeInteger, S, Mand, "1..65534", ""},
		{"/1/0/1", "Lifetime", RW, lwm2m.TypeInteger, S, Mand, "", "s"},
		{"/1/0/6", "Notification Storing When Disabled or Offline", RW, lwm2m.TypeBoolean, S, Mand, "", ""},
		{"/1/0/7", "Binding", RW, lwm2m.TypeString, S, Mand, "", ""},
		{"/1/0/8", "Registration Update Trigger", E, lwm2m.TypeNone, S, Mand, "", ""},
		{"/1/0/9", "Bootstrap-Request Trigger", E, lwm2m.TypeNone, S, Opt, "", ""},
		{"/1/0/13", "Registration Priority Order", RW, lwm2m.TypeUnsignedInteger, S, Opt, "", ""},
		{"/1/0/23", "Mute Send", RW, lwm2m.TypeBoolean, S, Opt, "", ""},
	} {
		res, ok := o.Resource(lwm2m.MustParsePath(f.path).Resource())
		if !ok {
			t.Errorf("%s: not defined", f.path)
			continue
		}
		got := resFact{f.path, res.Name, res.Operations, res.Type, res.Multiple, res.Mandatory, res.Range, res.Units}
		if got != f {
			t.Errorf("%s:\n got %+v\nwant %+v", f.path, got, f)
		}
	}
}

// TestEarlierVersionsMatchSpec checks the headers of the earlier object
// versions the registry keeps for LwM2M 1.1 clients, and the facts in
// which they differ from the newest versions (Device 1.1 per
// OMA-SUP-XML_LWM2M_Device-V1_1, Access Control 1.0 per
// OMA-SUP-XML_LWM2M_Access_Control-V1_0), and that Get still returns the
// newest.
func TestEarlierVersionsMatchSpec(t *testing.T) {
	r := Default()
	cases := []struct {
		id            uint16
		version, urn  string
		lwm2m, newest string
		resources     []uint16
	}{
		{1, "1.1", "urn:oma:lwm2m:oma:1:1.1", "1.1", "1.2", span(0, 23)},
		{2, "1.0", "urn:oma:lwm2m:oma:2", "1.0", "1.1", span(0, 3)},
		{3, "1.1", "urn:oma:lwm2m:oma:3:1.1", "1.1", "1.2", span(0, 22)},
	}
	for _, c := range cases {
		o, ok := r.GetVersion(c.id, c.version)
		if !ok {
			t.Errorf("object %d version %s not in Default()", c.id, c.version)
			continue
		}
		if o.URN != c.urn || o.LwM2MVersion != c.lwm2m || !slices.Equal(o.ResourceIDs(), c.resources) {
			t.Errorf("object %d v%s: URN %s, LwM2M %s, resources %v", c.id, c.version, o.URN, o.LwM2MVersion, o.ResourceIDs())
		}
		if n, _ := r.Get(c.id); n.Version != c.newest {
			t.Errorf("Get(%d) = v%s, want the newest, v%s", c.id, n.Version, c.newest)
		}
	}
	d, _ := r.GetVersion(3, "1.1")
	if e := d.Resources[11]; e.Range != "0..8" || !slices.Equal(e.Bounds, []Interval{{0, 8}}) {
		t.Errorf("Device 1.1 Error Code range %q %v, want 0..8", e.Range, e.Bounds)
	}
	if b := d.Resources[9]; b.Units != "%" {
		t.Errorf("Device 1.1 Battery Level units %q, want %%", b.Units)
	}
	a, _ := r.GetVersion(2, "1.0")
	if acl := a.Resources[2]; acl.Range != "16-bit" || acl.Bounds != nil || !acl.Multiple || acl.Operations != RW {
		t.Errorf("Access Control 1.0 ACL = %v range %q bounds %v", acl, acl.Range, acl.Bounds)
	}
}

func TestBuiltinRangesParsed(t *testing.T) {
	r := Default()
	cases := []struct {
		path    string
		bounds  []Interval
		lengths []Interval
	}{
		{"/5/0/3", []Interval{{0, 3}}, nil},
		{"/5/0/1", nil, []Interval{{0, 255}}},
		{"/0/0/7", nil, []Interval{{6, 6}}},
		{"/0/0/8", nil, []Interval{{16, 16}, {32, 32}, {48, 48}}},
		{"/9/0/0", nil, []Interval{{0, 255}}},      // "0..255 bytes"
		{"/1/0/22", nil, nil},                      // prose: constrains nothing
		{"/1/0/1", nil, nil},                       // no range
		{"/0/0/18/0", []Interval{{0, 65535}}, nil}, // resource-instance path
		{"/2/0/3", []Interval{{0, 65535}}, nil},
	}
	for _, c := range cases {
		res, ok := r.Resource(lwm2m.MustParsePath(c.path))
		if !ok {
			t.Fatalf("%s: not defined", c.path)
		}
		if !slices.Equal(res.Bounds, c.bounds) || !slices.Equal(res.Lengths, c.lengths) || res.Enum != nil {
			t.Errorf("%s range %q: bounds %v lengths %v enum %v; want bounds %v lengths %v",
				c.path, res.Range, res.Bounds, res.Lengths, res.Enum, c.bounds, c.lengths)
		}
	}
}

// TestResourceTypeResolvesResourceAndInstancePaths: the registry is the
// codecs' TypeResolver, asked with /o/i/r and /o/i/r/ri paths.
func TestResourceTypeResolvesResourceAndInstancePaths(t *testing.T) {
	var resolver interface {
		ResourceType(lwm2m.Path) (lwm2m.Type, bool)
	} = Default()
	cases := []struct {
		path string
		typ  lwm2m.Type
		ok   bool
	}{
		{"/3/0/0", lwm2m.TypeString, true},
		{"/3/0/11/0", lwm2m.TypeInteger, true},
		{"/3/0/11/7", lwm2m.TypeInteger, true},
		{"/5/0/0", lwm2m.TypeOpaque, true},
		{"/5/0/13", lwm2m.TypeUnsignedInteger, true},
		{"/1/3/1", lwm2m.TypeUnsignedInteger, true},
		{"/6/0/0", lwm2m.TypeFloat, true},
		{"/3/0/22/1", lwm2m.TypeObjLnk, true},
		{"/5/0/4", lwm2m.TypeNone, false},       // unused ID in object 5
		{"/3303/0/5700", lwm2m.TypeNone, false}, // not built in
		{"/3/0", lwm2m.TypeNone, false},         // not a resource path
		{"/3", lwm2m.TypeNone, false},
	}
	for _, c := range cases {
		typ, ok := resolver.ResourceType(lwm2m.MustParsePath(c.path))
		if typ != c.typ || ok != c.ok {
			t.Errorf("ResourceType(%s) = %v, %v; want %v, %v", c.path, typ, ok, c.typ, c.ok)
		}
	}
}

func TestDefaultReturnsIndependentRegistries(t *testing.T) {
	a, b := Default(), Default()
	custom := &ObjectModel{ID: 33000, Name: "Custom", Version: "1.0", Resources: map[uint16]*ResourceModel{}}
	if err := a.Add(custom); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Get(33000); !ok {
		t.Fatal("added model not found")
	}
	if _, ok := b.Get(33000); ok {
		t.Fatal("a model added to one Default() registry shows in another")
	}
}

func TestVersionsNewestFirst(t *testing.T) {
	r := Default()
	v10 := &ObjectModel{ID: 5, Name: "Firmware Update", Version: "1.0", Resources: map[uint16]*ResourceModel{
		3: {ID: 3, Name: "State", Operations: R, Type: lwm2m.TypeInteger},
	}}
	v110 := &ObjectModel{ID: 5, Name: "Firmware Update", Version: "1.10", Resources: map[uint16]*ResourceModel{}}
	if err := r.Add(v10, v110); err != nil {
		t.Fatal(err)
	}
	if got := r.Versions(5); !slices.Equal(got, []string{"1.10", "1.1", "1.0"}) {
		t.Errorf("Versions(5) = %v, want 1.10 (numerically newest) first", got)
	}
	if o, _ := r.Get(5); o != v110 {
		t.Errorf("Get(5) = %v, want version 1.10", o)
	}
	if o, ok := r.GetVersion(5, "1.0"); !ok || o != v10 {
		t.Errorf("GetVersion(5, 1.0) = %v, %v", o, ok)
	}
	if o, ok := r.GetVersion(5, "1.1"); !ok || len(o.Resources) != 13 {
		t.Errorf("GetVersion(5, 1.1) = %v, %v; want the built-in model", o, ok)
	}
	if _, ok := r.GetVersion(5, "2.0"); ok {
		t.Error("GetVersion(5, 2.0) found a model that was never added")
	}
	// Same ID and version replaces.
	repl := &ObjectModel{ID: 5, Name: "Replaced", Version: "1.0", Resources: map[uint16]*ResourceModel{}}
	if err := r.Add(repl); err != nil {
		t.Fatal(err)
	}
	if o, _ := r.GetVersion(5, "1.0"); o != repl {
		t.Errorf("Add of an existing ID and version did not replace it")
	}
	if got := r.Versions(5); len(got) != 3 {
		t.Errorf("Versions(5) after replace = %v, want 3 versions", got)
	}
}

func TestAddRejectsBrokenModels(t *testing.T) {
	cases := map[string]*ObjectModel{
		"nil":          nil,
		"bad version":  {ID: 1000, Name: "x", Version: "one", Resources: map[uint16]*ResourceModel{}},
		"ID mismatch":  {ID: 1000, Name: "x", Version: "1.0", Resources: map[uint16]*ResourceModel{1: {ID: 2}}},
		"nil resource": {ID: 1000, Name: "x", Version: "1.0", Resources: map[uint16]*ResourceModel{1: nil}},
		"reserved ID":  {ID: 65535, Name: "x", Version: "1.0"},
	}
	for name, m := range cases {
		r := NewRegistry()
		good := &ObjectModel{ID: 999, Name: "ok", Version: "1.0"}
		if err := r.Add(good, m); err == nil {
			t.Errorf("%s: Add accepted it", name)
		}
		if _, ok := r.Get(999); ok {
			t.Errorf("%s: a failed Add registered part of its models", name)
		}
	}
}

// TestRegistryConcurrentReadsAndAdds runs lookups while models are added;
// run with -race.
func TestRegistryConcurrentReadsAndAdds(t *testing.T) {
	r := Default()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := lwm2m.MustParsePath("/5/0/3")
			for i := 0; i < 500; i++ {
				if typ, ok := r.ResourceType(p); !ok || typ != lwm2m.TypeInteger {
					t.Errorf("ResourceType(/5/0/3) = %v, %v during adds", typ, ok)
					return
				}
				_ = r.List()
				_, _ = r.GetVersion(5, "1.1")
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			m := &ObjectModel{ID: uint16(30000 + i%20), Name: "c", Version: fmt.Sprintf("1.%d", i), Resources: map[uint16]*ResourceModel{}}
			if err := r.Add(m); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	if got := len(r.Versions(30000)); got != 10 {
		t.Errorf("object 30000 has %d versions, want 10", got)
	}
}

func BenchmarkResourceType(b *testing.B) {
	r := Default()
	p := lwm2m.MustParsePath("/3/0/11/0")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := r.ResourceType(p); !ok {
			b.Fatal("not found")
		}
	}
}

func TestMissingMandatory(t *testing.T) {
	acl, _ := Default().Get(2)
	entries := []lwm2m.Entry{
		{Path: lwm2m.MustParsePath("/2/1/0"), Value: lwm2m.Integer(5)},
		{Path: lwm2m.MustParsePath("/2/1/2/101"), Value: lwm2m.Integer(1)},
		{Path: lwm2m.MustParsePath("/2/7/1"), Value: lwm2m.Integer(0)}, // other instance
	}
	// Object ID (0) given; Object Instance ID (1) and Access Control Owner
	// (3) are mandatory and missing; ACL (2) is optional.
	if got := acl.MissingMandatory(1, entries); !slices.Equal(got, []uint16{1, 3}) {
		t.Errorf("MissingMandatory = %v, want [1 3]", got)
	}
	fw, _ := Default().Get(5)
	// Update (2) is mandatory but executable: never missing.
	if got := fw.MissingMandatory(0, nil); !slices.Equal(got, []uint16{0, 1, 3, 5, 9}) {
		t.Errorf("firmware MissingMandatory = %v, want [0 1 3 5 9]", got)
	}
}
