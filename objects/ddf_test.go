package objects

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fotastack/fota/lwm2m"
)

func TestLoadDDFIPSOTemperature(t *testing.T) {
	f, err := os.Open("testdata/3303.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	models, err := LoadDDF(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 1 {
		t.Fatalf("got %d models, want 1", len(models))
	}
	o := models[0]
	if o.ID != 3303 || o.Name != "Temperature" || o.Version != "1.0" || o.LwM2MVersion != "1.0" ||
		!o.Multiple || o.Mandatory || o.URN != "urn:oma:lwm2m:ext:3303" {
		t.Errorf("header = %+v", o)
	}
	if want := []uint16{5601, 5602, 5603, 5604, 5605, 5700, 5701}; !slices.Equal(o.ResourceIDs(), want) {
		t.Errorf("resources = %v, want %v", o.ResourceIDs(), want)
	}
	sv := o.Resources[5700]
	if sv.Name != "Sensor Value" || sv.Operations != R || sv.Type != lwm2m.TypeFloat || sv.Multiple || !sv.Mandatory {
		t.Errorf("5700 = %+v", sv)
	}
	if rs := o.Resources[5605]; !rs.Executable() || rs.Type != lwm2m.TypeNone || rs.Mandatory {
		t.Errorf("5605 = %+v", rs)
	}
	if o.Description == "" || sv.Description != "Last measured value." {
		t.Errorf("descriptions not read: %q / %q", o.Description, sv.Description)
	}
}

// TestLoadDDFReadsRegistryLayout reads the element order and the empty
// forms (<Units/>, missing <RangeEnumeration>) seen in OMA registry files.
func TestLoadDDFReadsRegistryLayout(t *testing.T) {
	const doc = `<?xml version="1.0" encoding="UTF-8"?>
<LWM2M><Object ObjectType="MODefinition"><Name>Custom</Name><ObjectID>33001</ObjectID>
<MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Resources>
<Item ID="0"><Name>Mode</Name><Type>String</Type><Operations>RW</Operations><Mandatory>Optional</Mandatory><MultipleInstances>Single</MultipleInstances><Units/><RangeEnumeration>U, UQ, S</RangeEnumeration></Item>
<Item ID="1"><Name>Temp</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory><Type>Integer</Type><RangeEnumeration>-40..85</RangeEnumeration><Units>Cel</Units></Item>
<Item ID="2"><Name>Percent</Name><Operations>RW</Operations><MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory><Type>Float</Type><RangeEnumeration>0-100</RangeEnumeration></Item>
<Item ID="3"><Name>Key</Name><Operations>W</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>Opaque</Type><RangeEnumeration>16, 32</RangeEnumeration></Item>
</Resources></Object></LWM2M>`
	models, err := LoadDDF(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	o := models[0]
	if o.Version != "1.0" || o.LwM2MVersion != "1.0" {
		t.Errorf("missing versions should default to 1.0, got %q %q", o.Version, o.LwM2MVersion)
	}
	if got := o.Resources[0].Enum; !slices.Equal(got, []string{"U", "UQ", "S"}) {
		t.Errorf("enum = %v", got)
	}
	if got := o.Resources[1].Bounds; !slices.Equal(got, []Interval{{-40, 85}}) {
		t.Errorf("bounds of -40..85 = %v", got)
	}
	if got := o.Resources[2].Bounds; !slices.Equal(got, []Interval{{0, 100}}) {
		t.Errorf("bounds of 0-100 = %v", got)
	}
	if got := o.Resources[3].Lengths; !slices.Equal(got, []Interval{{16, 16}, {32, 32}}) {
		t.Errorf("lengths of 16, 32 = %v", got)
	}
}

func TestLoadDDFRejectsMalformedInput(t *testing.T) {
	item := func(fields string) string {
		return `<LWM2M><Object ObjectType="MODefinition"><Name>T</Name><ObjectID>33000</ObjectID>
<MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Resources>` + fields + `</Resources></Object></LWM2M>`
	}
	good := `<Name>V</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>Integer</Type>`
	cases := []struct {
		name, doc, want string
	}{
		{"not XML", "this is not xml", "XML"},
		{"truncated", `<LWM2M><Object><Name>T</Name>`, "XML"},
		{"other root", `<Foo/>`, "XML"},
		{"no object", `<LWM2M></LWM2M>`, "no <Object>"},
		{"object type", `<LWM2M><Object ObjectType="Other"><Name>T</Name><ObjectID>1</ObjectID></Object></LWM2M>`, "ObjectType"},
		{"bad object ID", `<LWM2M><Object><Name>T</Name><ObjectID>abc</ObjectID></Object></LWM2M>`, `ObjectID: "abc"`},
		{"reserved object ID", `<LWM2M><Object><Name>T</Name><ObjectID>65535</ObjectID></Object></LWM2M>`, "ObjectID"},
		{"no name", `<LWM2M><Object><ObjectID>7</ObjectID></Object></LWM2M>`, "object 7: <Name> is empty"},
		{"bad multiple", `<LWM2M><Object><Name>T</Name><ObjectID>7</ObjectID><MultipleInstances>Many</MultipleInstances><Mandatory>Optional</Mandatory></Object></LWM2M>`, "MultipleInstances"},
		{"bad mandatory", `<LWM2M><Object><Name>T</Name><ObjectID>7</ObjectID><MultipleInstances>Single</MultipleInstances></Object></LWM2M>`, "Mandatory"},
		{"bad version", `<LWM2M><Object><Name>T</Name><ObjectID>7</ObjectID><ObjectVersion>v2</ObjectVersion><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory></Object></LWM2M>`, "ObjectVersion"},
		{"bad item ID", item(`<Item ID="x">` + good + `</Item>`), `item #1: ID: "x"`},
		{"duplicate item", item(`<Item ID="1">` + good + `</Item><Item ID="1">` + good + `</Item>`), "item 1 is defined twice"},
		{"bad operations", item(`<Item ID="2"><Name>V</Name><Operations>RX</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>Integer</Type></Item>`), `item 2 ("V"): operations "RX"`},
		{"bad type", item(`<Item ID="2"><Name>V</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>Double</Type></Item>`), `item 2 ("V"): type`},
		{"no type", item(`<Item ID="2"><Name>V</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type></Type></Item>`), "<Type> is empty"},
		{"no item name", item(`<Item ID="2"><Operations>R</Operations></Item>`), "item 2: <Name> is empty"},
		{"inverted range", item(`<Item ID="2">` + good + `<RangeEnumeration>10..1</RangeEnumeration></Item>`), "maximum below minimum"},
		{"fractional length", item(`<Item ID="2"><Name>V</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>String</Type><RangeEnumeration>0..2.5</RangeEnumeration></Item>`), "whole numbers"},
		{"latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?><LWM2M/>`, "UTF-8"},
		{"object twice", `<LWM2M>` + strings.Repeat(`<Object><Name>T</Name><ObjectID>7</ObjectID><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory></Object>`, 2) + `</LWM2M>`, "defined twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			models, err := LoadDDF(strings.NewReader(c.doc))
			if err == nil {
				t.Fatalf("accepted: %v", models)
			}
			if !errors.Is(err, ErrDDF) {
				t.Errorf("error %q does not wrap ErrDDF", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestLoadDDFLimitsInputSize(t *testing.T) {
	// A valid start followed by more than MaxDDFSize bytes of whitespace:
	// the loader must stop reading at the limit, not parse it.
	doc := paddedReader(`<LWM2M>`, MaxDDFSize)
	_, err := LoadDDF(doc)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want a size error", err)
	}
}

// paddedReader returns a reader of prefix followed by n spaces.
func paddedReader(prefix string, n int) *bytes.Reader {
	b := make([]byte, len(prefix)+n)
	copy(b, prefix)
	for i := len(prefix); i < len(b); i++ {
		b[i] = ' '
	}
	return bytes.NewReader(b)
}

func TestLoadDirAddsCustomModels(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/3303.xml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "3303.xml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Files that are not *.xml are skipped.
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a DDF"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := Default()
	if err := r.LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	typ, ok := r.ResourceType(lwm2m.MustParsePath("/3303/0/5700"))
	if !ok || typ != lwm2m.TypeFloat {
		t.Errorf("ResourceType(/3303/0/5700) = %v, %v", typ, ok)
	}
	if _, ok := r.Get(5); !ok {
		t.Error("built-in models lost after LoadDir")
	}
}

func TestLoadDirIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/3303.xml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "a.xml"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "b.xml"), []byte("<LWM2M><Object><Name>X</Name><ObjectID>no</ObjectID></Object></LWM2M>"), 0o644)
	r := NewRegistry()
	err = r.LoadDir(dir)
	if err == nil {
		t.Fatal("LoadDir accepted a broken file")
	}
	if !strings.Contains(err.Error(), "b.xml") || !errors.Is(err, ErrDDF) {
		t.Errorf("error %q does not name b.xml or wrap ErrDDF", err)
	}
	if len(r.List()) != 0 {
		t.Errorf("LoadDir registered %d models despite the error", len(r.List()))
	}
	if err := r.LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadDir of a missing directory succeeded")
	}
}

// FuzzLoadDDF: LoadDDF never panics, and what it accepts registers and
// answers lookups.
func FuzzLoadDDF(f *testing.F) {
	for _, glob := range []string{"ddf/*.xml", "testdata/*.xml"} {
		files, _ := filepath.Glob(glob)
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(`<LWM2M><Object><Name>T</Name><ObjectID>1</ObjectID><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Resources><Item ID="0"><Name>a</Name><Operations>RW</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>String</Type><RangeEnumeration>a,b</RangeEnumeration></Item></Resources></Object></LWM2M>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		models, err := LoadDDF(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrDDF) {
				t.Fatalf("error %q does not wrap ErrDDF", err)
			}
			return
		}
		r := NewRegistry()
		if err := r.Add(models...); err != nil {
			t.Fatalf("loaded models do not register: %v", err)
		}
		for _, m := range models {
			for id, res := range m.Resources {
				p := lwm2m.ResourcePath(m.ID, 0, id)
				if _, ok := r.ResourceType(p); !ok {
					t.Fatalf("%v not resolvable", p)
				}
				for _, iv := range append(slices.Clone(res.Bounds), res.Lengths...) {
					if iv.Max < iv.Min {
						t.Fatalf("%v: inverted interval %v", p, iv)
					}
				}
			}
		}
	})
}
