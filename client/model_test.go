package client

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

// declared lists the resource definitions object o declares: a
// SimpleObject's own list, else those its instances present.
func declared(o Object) []ResourceDef {
	if so, ok := o.(*SimpleObject); ok {
		out := make([]ResourceDef, 0, len(so.defOrder))
		for _, id := range so.defOrder {
			out = append(out, so.defs[id])
		}
		return out
	}
	var out []ResourceDef
	seen := map[uint16]bool{}
	for _, i := range o.Instances() {
		defs, _ := o.Resources(i)
		for _, d := range defs {
			if !seen[d.ID] {
				seen[d.ID] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// disagreements lists where object o departs from the registry's model of
// the object version it announces: a version the registry lacks or made
// for a later LwM2M enabler than the client's, an instance count or a
// resource whose definition is not the registry's, a resource the model
// does not define, or a mandatory resource (LwM2M Core 7.1: every
// implementation supports it) the object leaves out.
func disagreements(o Object) []string {
	v := o.Version()
	if v == "" {
		v = "1.0"
	}
	m, ok := models.GetVersion(o.ID(), v)
	if !ok {
		return []string{fmt.Sprintf("object %d announces version %s, which the registry does not define", o.ID(), v)}
	}
	var out []string
	if m.LwM2MVersion > LwM2MVersion { // "1.0" < "1.1" < "1.2": one digit each
		out = append(out, fmt.Sprintf("%v is defined for LwM2M %s, later than the client's %s", m, m.LwM2MVersion, LwM2MVersion))
	}
	if so, ok := o.(*SimpleObject); ok && so.multi != m.Multiple {
		out = append(out, fmt.Sprintf("%v: multiple instances %v, the model says %v", m, so.multi, m.Multiple))
	}
	have := map[uint16]bool{}
	for _, d := range declared(o) {
		have[d.ID] = true
		r, ok := m.Resource(d.ID)
		if !ok {
			out = append(out, fmt.Sprintf("%v defines no resource %d, which the object declares", m, d.ID))
			continue
		}
		if !reflect.DeepEqual(d, *r) {
			out = append(out, fmt.Sprintf("%v: the object declares %v, the registry %v", m, &d, r))
		}
	}
	for _, id := range m.ResourceIDs() {
		if m.Resources[id].Mandatory && !have[id] {
			out = append(out, fmt.Sprintf("%v: mandatory resource %d not implemented", m, id))
		}
	}
	return out
}

// TestClientObjectsAreTheRegistrysDefinitions: every object a client
// implements (those New makes, and the Access Control object bootstrap
// provisions) declares exactly the registry's definitions of the object
// version it announces, and all its mandatory resources.
func TestClientObjectsAreTheRegistrysDefinitions(t *testing.T) {
	c, err := New(Config{Endpoint: "defs", ServerURI: "coap://127.0.0.1:5683", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	objs := append(c.objectList(), newAccessControlObject())
	var ids []uint16
	for _, o := range objs {
		ids = append(ids, o.ID())
		for _, d := range disagreements(o) {
			t.Error(d)
		}
	}
	if fmt.Sprint(ids) != "[0 1 3 4 5 2]" {
		t.Errorf("checked objects %v, want 0 1 3 4 5 and 2", ids)
	}
}

// TestDisagreementsCatchesHandWrittenDefinitions proves the check above
// can fail: definitions written by hand that differ from the registry in
// type, operations or multiplicity, or that invent a resource or version.
func TestDisagreementsCatchesHandWrittenDefinitions(t *testing.T) {
	lifetime := ResourceDef{ID: SrvLifetime, Name: "Lifetime", Type: lwm2m.TypeUnsignedInteger, Operations: objects.RW,
		Mandatory: true, Units: "s"} // Unsigned in Server 1.2, Integer in 1.1
	cases := map[string]struct {
		o    Object
		want string
	}{
		"type": {NewSimpleObject(1, "1.1", true, lifetime), "the object declares resource 1 \"Lifetime\" (RW, unsigned integer"},
		"operations": {NewSimpleObject(0, "1.2", true,
			ResourceDef{ID: SecServerURI, Name: "LWM2M Server URI", Type: lwm2m.TypeString, Operations: objects.RW, Mandatory: true}),
			"the object declares resource 0 \"LWM2M Server URI\" (RW,"},
		"multiple": {NewSimpleObject(4, "1.3", false,
			ResourceDef{ID: ConnIPAddresses, Name: "IP Addresses", Type: lwm2m.TypeString, Operations: objects.R, Mandatory: true}),
			"(R, string, single)"},
		"unknown resource": {NewSimpleObject(3, "1.1", false, ResourceDef{ID: 99, Name: "x", Type: lwm2m.TypeString, Operations: objects.R}),
			"defines no resource 99"},
		"mandatory left out": {NewSimpleObject(3, "1.1", false), "mandatory resource 4 not implemented"},
		"instances":          {NewSimpleObject(3, "1.1", true), "multiple instances true"},
		"unknown version":    {NewSimpleObject(3, "1.7", false), "announces version 1.7"},
		"later enabler":      {NewSimpleObject(1, "1.2", true), "defined for LwM2M 1.2"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := strings.Join(disagreements(c.o), "\n")
			if !strings.Contains(got, c.want) {
				t.Errorf("disagreements:\n%s\nwant one containing %q", got, c.want)
			}
		})
	}
}

func TestDefsTakesTheListedResourcesInIDOrder(t *testing.T) {
	m, ok := Model(5, "1.1")
	if !ok {
		t.Fatal("no Firmware Update 1.1")
	}
	defs, err := Defs(m, FwState, FwPackage, FwProtocolSupport)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range defs {
		got = append(got, d.String())
	}
	want := []string{
		`resource 0 "Package" (W, opaque, single)`,
		`resource 3 "State" (R, integer, single)`,
		`resource 8 "Firmware Update Protocol Support" (R, integer, multiple)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Defs = %q, want %q", got, want)
	}
	all, err := Defs(m)
	if err != nil || len(all) != len(m.Resources) {
		t.Errorf("Defs with no IDs: %d definitions, %v; want all %d", len(all), err, len(m.Resources))
	}
	if _, err := Defs(m, FwState, 4); err == nil || !strings.Contains(err.Error(), "no resource 4") {
		t.Errorf("Defs of resource 4, which Firmware Update lacks: %v", err)
	}
	if _, err := Defs(m, FwState, FwState); err == nil {
		t.Error("Defs accepted a resource listed twice")
	}
}

// TestNewModelObjectBehavesAsTheModelSays: the object's version, whether
// the server may create instances, and what each resource allows all
// follow the model, with nothing declared by hand.
func TestNewModelObjectBehavesAsTheModelSays(t *testing.T) {
	srv, _ := Model(1, "1.1")
	o, err := NewModelObject(srv, SrvShortServerID, SrvLifetime, SrvUpdateTrigger)
	if err != nil {
		t.Fatal(err)
	}
	if o.ID() != 1 || o.Version() != "1.1" {
		t.Errorf("object %d version %s, want 1 version 1.1", o.ID(), o.Version())
	}
	if err := o.Create(0, []lwm2m.Entry{{Path: lwm2m.ResourcePath(1, 0, SrvLifetime), Value: lwm2m.Integer(60)}}); err != nil {
		t.Fatalf("create on a multiple-instance object: %v", err)
	}
	// Short Server ID is R in the model: a server write is refused.
	err = o.Write(lwm2m.ResourcePath(1, 0, SrvShortServerID), []lwm2m.Entry{{Path: lwm2m.ResourcePath(1, 0, SrvShortServerID), Value: lwm2m.Integer(7)}}, true)
	if !errors.Is(err, ErrNotAllowed) {
		t.Errorf("write of read-only Short Server ID: %v, want ErrNotAllowed", err)
	}
	if err := o.Execute(lwm2m.ResourcePath(1, 0, SrvUpdateTrigger), ""); err != nil {
		t.Errorf("execute Registration Update Trigger: %v", err)
	}
	// Binding was not listed: the object does not have it.
	err = o.Write(lwm2m.ResourcePath(1, 0, SrvBinding), []lwm2m.Entry{{Path: lwm2m.ResourcePath(1, 0, SrvBinding), Value: lwm2m.String("U")}}, true)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("write of unlisted Binding: %v, want ErrNotFound", err)
	}

	dev, _ := Model(3, "1.1")
	d, err := NewModelObject(dev, DevReboot)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Create(1, nil); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("create on single-instance Device: %v, want ErrNotAllowed", err)
	}
	if _, err := NewModelObject(dev, 404); err == nil {
		t.Error("NewModelObject accepted a resource Device does not define")
	}
}

// The types the client decodes bootstrap writes with are the registry's:
// Lifetime an Integer (Server 1.1), Matching Type an Unsigned Integer
// (Security), and resources the device does not keep have none.
func TestBootstrapTypesComeFromTheRegistry(t *testing.T) {
	cases := []struct {
		p    lwm2m.Path
		want lwm2m.Type
		ok   bool
	}{
		{lwm2m.ResourcePath(1, 3, SrvLifetime), lwm2m.TypeInteger, true},
		{lwm2m.ResourcePath(0, 1, SecMatchingType), lwm2m.TypeUnsignedInteger, true},
		{lwm2m.ResourcePath(0, 1, SecSecretKey), lwm2m.TypeOpaque, true},
		{lwm2m.ResourceInstancePath(2, 0, acACL, 101), lwm2m.TypeInteger, true},
		{lwm2m.ResourcePath(0, 0, 16), lwm2m.TypeNone, false}, // DTLS/TLS Ciphersuite: not kept
	}
	for _, c := range cases {
		got, ok := bootstrapResolver{}.ResourceType(c.p)
		if got != c.want || ok != c.ok {
			t.Errorf("ResourceType(%v) = %v, %v; want %v, %v", c.p, got, ok, c.want, c.ok)
		}
	}
}
