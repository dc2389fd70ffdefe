package lwm2m

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// compactJSON removes the layout of a spec example.
func compactJSON(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// LwM2M 1.1 Core 7.4.4, SenML JSON example "Read on Object Instance /3/0"
// (Device object with single and multiple resources, names relative to the
// base name "/3/0/").
const specSenMLJSONDevice = `[
{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},
{"n":"1","vs":"Lightweight M2M Client"},
{"n":"2","vs":"345000123"},
{"n":"3","vs":"1.0"},
{"n":"6/0","v":1},
{"n":"6/1","v":5},
{"n":"7/0","v":3800},
{"n":"7/1","v":5000},
{"n":"8/0","v":125},
{"n":"8/1","v":900},
{"n":"9","v":100},
{"n":"10","v":15},
{"n":"11/0","v":0},
{"n":"13","v":1367491215},
{"n":"14","vs":"+02:00"},
{"n":"16","vs":"U"}]`

func TestSenMLJSON_SpecExample_DeviceObjectInstance(t *testing.T) {
	got, err := Decode(FormatSenMLJSON, InstancePath(3, 0), []byte(specSenMLJSONDevice), deviceTypes)
	if err != nil || !entriesEqual(got, deviceEntries()) {
		t.Fatalf("decode: %v %v", got, err)
	}
	enc, err := Encode(FormatSenMLJSON, InstancePath(3, 0), deviceEntries())
	if want := compactJSON(t, specSenMLJSONDevice); err != nil || !bytes.Equal(enc, want) {
		t.Fatalf("encode:\n got %s\nwant %s (%v)", enc, want, err)
	}
}

// LwM2M 1.1 Core 7.4.4, SenML JSON example of a Read-Composite answer with
// names from the root (built from the spec text: /3/0/0, /3/0/9 and
// /1/0/1 with the base name changing per object).
func TestSenMLJSON_SpecExample_ReadComposite(t *testing.T) {
	payload := `[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},
{"n":"9","v":95},
{"bn":"/1/0/","n":"1","v":86400}]`
	got, err := Decode(FormatSenMLJSON, Root, []byte(payload), nil)
	want := []Entry{
		{ResourcePath(3, 0, 0), String("Open Mobile Alliance")},
		{ResourcePath(3, 0, 9), Integer(95)},
		{ResourcePath(1, 0, 1), Integer(86400)},
	}
	if err != nil || !entriesEqual(got, want) {
		t.Fatalf("decode: %v %v", got, err)
	}
	enc, err := Encode(FormatSenMLJSON, Root, want)
	if want := compactJSON(t, payload); err != nil || !bytes.Equal(enc, want) {
		t.Fatalf("encode:\n got %s\nwant %s (%v)", enc, want, err)
	}
}

// LwM2M 1.1 Core 7.4.4, Read-Composite request payload: records with only
// a name, e.g. [{"n":"/3/0/0"},{"n":"/1/0/1"},{"n":"/5"}].
func TestSenMLJSON_SpecExample_ReadCompositeRequestPaths(t *testing.T) {
	payload := `[{"n":"/3/0/0"},{"n":"/1/0/1"},{"n":"/5"}]`
	want := []Path{ResourcePath(3, 0, 0), ResourcePath(1, 0, 1), ObjectPath(5)}
	got, err := DecodePaths(FormatSenMLJSON, []byte(payload))
	if err != nil || len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v %v", got, err)
	}
	enc, err := EncodePaths(FormatSenMLJSON, want)
	if err != nil || string(enc) != payload {
		t.Fatalf("encode: %s %v", enc, err)
	}
	for _, cf := range []ContentFormat{FormatSenMLCBOR, FormatLwM2MCBOR} {
		b, err := EncodePaths(cf, want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodePaths(cf, b)
		if err != nil || len(got) != 3 {
			t.Fatalf("%v: %v %v", cf, got, err)
		}
	}
	if _, err := DecodePaths(FormatSenMLJSON, []byte(`[{"n":"/3/0/0","v":1}]`)); err == nil {
		t.Fatal("path list with a value accepted")
	}
}

// LwM2M 1.1 Core 7.4.4, Notify with timestamped values of /3303/0/5700
// (built from the spec text): base time, relative times, base value.
func TestSenMLJSON_SpecExample_TimestampedNotify(t *testing.T) {
	payload := `[{"bn":"/3303/0/5700","bt":25462634,"v":22.4,"t":-5},
{"t":-30,"v":22.9},
{"t":-50,"v":24.1}]`
	got, err := DecodeTimed(FormatSenMLJSON, InstancePath(3303, 0), []byte(payload), nil)
	if err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	wantT := []float64{25462629, 25462604, 25462584}
	wantV := []float64{22.4, 22.9, 24.1}
	for i, e := range got {
		if e.Path != ResourcePath(3303, 0, 5700) || e.Time != wantT[i] || e.Value.Float() != wantV[i] {
			t.Errorf("record %d: %+v", i, e)
		}
	}
	// 25462629 is below 2^28: a time relative to now (RFC 8428 4.5.3).
	if at := got[0].At(timeZero); !at.Equal(timeZero.Add(25462629 * time.Second)) {
		t.Errorf("relative time resolved to %v", at)
	}
	abs := TimedEntry{Time: 1700000000.5}
	if at := abs.At(timeZero); !at.Equal(time.Unix(1700000000, 5e8)) {
		t.Errorf("absolute time resolved to %v", at)
	}
	if at := (TimedEntry{}).At(timeZero); !at.IsZero() {
		t.Errorf("no time resolved to %v", at)
	}
	b, err := EncodeTimed(FormatSenMLJSON, InstancePath(3303, 0), got)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeTimed(FormatSenMLJSON, InstancePath(3303, 0), b, nil)
	if err != nil || len(back) != 3 || back[2].Time != wantT[2] {
		t.Fatalf("re-decode %s: %v %v", b, back, err)
	}
}

// SenML base value (RFC 8428 4.5.3): bv is added to every v.
func TestSenML_BaseValue(t *testing.T) {
	payload := `[{"bn":"/3/0/","bv":100,"n":"9","v":-5},{"n":"10","v":1}]`
	got, err := Decode(FormatSenMLJSON, InstancePath(3, 0), []byte(payload), deviceTypes)
	if err != nil || !got[0].Value.Equal(Integer(95)) || !got[1].Value.Equal(Integer(101)) {
		t.Fatalf("%v %v", got, err)
	}
}

// LwM2M 1.1 Core 7.4.4: objlnk in "vlo", opaque in "vd" as base64url.
func TestSenMLJSON_SpecExample_ObjlnkAndOpaque(t *testing.T) {
	payload := `[{"bn":"/1/0/","n":"23","vlo":"21:0"},{"n":"99","vd":"AAEC_-8"}]`
	types := TypeMap{ResourcePath(1, 0, 23): TypeObjLnk, ResourcePath(1, 0, 99): TypeOpaque}
	got, err := Decode(FormatSenMLJSON, InstancePath(1, 0), []byte(payload), types)
	if err != nil || !got[0].Value.Equal(Link(21, 0)) || !got[1].Value.Equal(Opaque([]byte{0, 1, 2, 0xff, 0xef})) {
		t.Fatalf("%v %v", got, err)
	}
	enc, err := Encode(FormatSenMLJSON, InstancePath(1, 0), got)
	if err != nil || string(enc) != payload {
		t.Fatalf("encode %s %v", enc, err)
	}
}

// LwM2M 1.1 Core 7.4.5, SenML CBOR: the same records with RFC 8428 integer
// labels (bn -2, n 0, v 2, vs 3). Bytes built by hand from the spec text
// for the first record of the Device example and /3/0/9:
// [{-2: "/3/0/", 0: "0", 3: "Open Mobile Alliance"}, {0: "9", 2: 100}].
func TestSenMLCBOR_SpecExample_DeviceResources(t *testing.T) {
	want := unhex(t, `82
a3 21 65 2f 33 2f 30 2f 00 61 30 03 74 4f 70 65 6e 20 4d 6f 62 69 6c 65 20 41 6c 6c 69 61 6e 63 65
a2 00 61 39 02 18 64`)
	es := []Entry{{ResourcePath(3, 0, 0), String("Open Mobile Alliance")}, {ResourcePath(3, 0, 9), Integer(100)}}
	got, err := Encode(FormatSenMLCBOR, InstancePath(3, 0), es)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encode:\n got % x\nwant % x (%v)", got, want, err)
	}
	dec, err := Decode(FormatSenMLCBOR, InstancePath(3, 0), want, deviceTypes)
	if err != nil || !entriesEqual(dec, es) {
		t.Fatalf("decode %v %v", dec, err)
	}
	all, err := Encode(FormatSenMLCBOR, InstancePath(3, 0), deviceEntries())
	if err != nil {
		t.Fatal(err)
	}
	dec, err = Decode(FormatSenMLCBOR, InstancePath(3, 0), all, deviceTypes)
	if err != nil || !entriesEqual(dec, deviceEntries()) {
		t.Fatalf("decode device %v %v", dec, err)
	}
}

// LwM2M 1.2 Core 7.4.6, LwM2M CBOR: nested maps from the root. Built from
// the spec text: {3: {0: {0: "Open Mobile Alliance", 9: 100, 6: {0: 1, 1: 5}}}}
// and the same with the single-child levels folded into the array key [3, 0].
func TestLwM2MCBOR_SpecExample_DeviceNested(t *testing.T) {
	nested := unhex(t, `a1 03 a1 00 a3
00 74 4f 70 65 6e 20 4d 6f 62 69 6c 65 20 41 6c 6c 69 61 6e 63 65
09 18 64
06 a2 00 01 01 05`)
	folded := unhex(t, `a1 82 03 00 a3
00 74 4f 70 65 6e 20 4d 6f 62 69 6c 65 20 41 6c 6c 69 61 6e 63 65
06 a2 00 01 01 05
09 18 64`)
	want := []Entry{
		{ResourcePath(3, 0, 0), String("Open Mobile Alliance")},
		{ResourcePath(3, 0, 9), Integer(100)},
		{ResourceInstancePath(3, 0, 6, 0), Integer(1)},
		{ResourceInstancePath(3, 0, 6, 1), Integer(5)},
	}
	got, err := Decode(FormatLwM2MCBOR, InstancePath(3, 0), nested, deviceTypes)
	if err != nil || !entriesEqual(got, want) {
		t.Fatalf("decode nested: %v %v", got, err)
	}
	enc, err := Encode(FormatLwM2MCBOR, InstancePath(3, 0), want)
	if err != nil || !bytes.Equal(enc, folded) {
		t.Fatalf("encode:\n got % x\nwant % x (%v)", enc, folded, err)
	}
	got, err = Decode(FormatLwM2MCBOR, InstancePath(3, 0), folded, deviceTypes)
	if err != nil || !entriesEqual(sortedEntries(got), sortedEntries(want)) {
		t.Fatalf("decode folded: %v %v", got, err)
	}
	// A single resource read folds the whole path: {[3, 0, 9]: 100}.
	one, err := Encode(FormatLwM2MCBOR, ResourcePath(3, 0, 9), want[1:2])
	if err != nil || !bytes.Equal(one, unhex(t, "a1 83 03 00 09 18 64")) {
		t.Fatalf("encode /3/0/9: % x %v", one, err)
	}
	// Time is tag 1 around the seconds.
	tm, err := Encode(FormatLwM2MCBOR, ResourcePath(3, 0, 13), []Entry{{ResourcePath(3, 0, 13), TimeUnix(1367491215)}})
	if err != nil || !bytes.Equal(tm, unhex(t, "a1 83 03 00 0d c1 1a 51 82 42 8f")) {
		t.Fatalf("encode /3/0/13: % x %v", tm, err)
	}
}

func TestLwM2MCBOR_Errors(t *testing.T) {
	cases := []struct{ name, hex, want string }{
		{"not a map", "83 01 02 03", "byte 0: major type 4, want a map"},
		{"duplicate path", "a2 83 03 00 09 01 83 03 00 09 02", "/3/0/9 given twice"},
		{"too many pairs", "b9 ff ff 00", "map of 65535 pairs exceeds the remaining 1 bytes"},
		{"path too deep", "a1 85 03 00 09 00 01 01", "deeper than 4 levels"},
		{"value at object level", "a1 03 01", "/3 is not a resource"},
		{"trailing bytes", "a1 83 03 00 09 01 00", "byte 6: 1 bytes after the map"},
		{"null value", "a1 83 03 00 09 f6", "/3/0/9 has a null value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(FormatLwM2MCBOR, Root, unhex(t, c.hex), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// LwM2M 1.0 Core 6.4.4, JSON example "Read /3/0".
const specLwM2MJSONDevice = `{"bn":"/3/0/","e":[
{"n":"0","sv":"Open Mobile Alliance"},
{"n":"1","sv":"Lightweight M2M Client"},
{"n":"2","sv":"345000123"},
{"n":"3","sv":"1.0"},
{"n":"6/0","v":1},
{"n":"6/1","v":5},
{"n":"7/0","v":3800},
{"n":"7/1","v":5000},
{"n":"8/0","v":125},
{"n":"8/1","v":900},
{"n":"9","v":100},
{"n":"10","v":15},
{"n":"11/0","v":0},
{"n":"13","v":1367491215},
{"n":"14","sv":"+02:00"},
{"n":"16","sv":"U"}]}`

func TestLwM2MJSON_SpecExample_DeviceObjectInstance(t *testing.T) {
	got, err := Decode(FormatLwM2MJSON, InstancePath(3, 0), []byte(specLwM2MJSONDevice), deviceTypes)
	if err != nil || !entriesEqual(got, deviceEntries()) {
		t.Fatalf("decode: %v %v", got, err)
	}
	enc, err := Encode(FormatLwM2MJSON, InstancePath(3, 0), deviceEntries())
	if want := compactJSON(t, specLwM2MJSONDevice); err != nil || !bytes.Equal(enc, want) {
		t.Fatalf("encode:\n got %s\nwant %s (%v)", enc, want, err)
	}
	// Without "bn", names are relative to the request path.
	got, err = Decode(FormatLwM2MJSON, InstancePath(3, 0), []byte(`{"e":[{"n":"9","v":100}]}`), deviceTypes)
	if err != nil || len(got) != 1 || got[0].Path != ResourcePath(3, 0, 9) {
		t.Fatalf("no bn: %v %v", got, err)
	}
}

func TestJSONDecoders_Errors(t *testing.T) {
	cases := []struct {
		cf       ContentFormat
		in, want string
	}{
		{FormatSenMLJSON, `[{"n":"/3/0/9","v":1},`, "senml+json: byte"},
		{FormatSenMLJSON, `[{"n":"/3/0/9","v":1,"vs":"x"}]`, "record 0 has 2 values"},
		{FormatSenMLJSON, `[{"n":"/3/0/x","v":1}]`, `record 0: name "/3/0/x"`},
		{FormatSenMLJSON, `[{"n":"/3/0","v":1}]`, "/3/0 is not a resource"},
		{FormatSenMLJSON, `[{"n":"/3/0/9"}]`, "has no value"},
		{FormatSenMLJSON, `[{"n":"/3/0/9","v":1.5}]`, "1.5 is not an integer"},
		{FormatSenMLJSON, `[{"n":"/3/0/9","v":"1"}]`, `"1" is not a number`},
		{FormatLwM2MJSON, `{"e":[{"n":"9"}]}`, "record 0 has 0 values"},
	}
	for _, c := range cases {
		_, err := Decode(c.cf, Root, []byte(c.in), deviceTypes)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %s: err = %v, want %q", c.cf, c.in, err, c.want)
		}
	}
}

// LwM2M 1.1.1 Core 7.4.5, SenML CBOR example "Read on Object Instance
// /3/0": the CBOR bytes of the SenML JSON example above (spec hex dump).
const specSenMLCBORDevice = `90
a3 21 65 2f 33 2f 30 2f 00 61 30 03 74 4f 70 65 6e 20 4d 6f 62 69 6c 65 20 41 6c 6c 69 61 6e 63 65
a2 00 61 31 03 76 4c 69 67 68 74 77 65 69 67 68 74 20 4d 32 4d 20 43 6c 69 65 6e 74
a2 00 61 32 03 69 33 34 35 30 30 30 31 32 33
a2 00 61 33 03 63 31 2e 30
a2 00 63 36 2f 30 02 01
a2 00 63 36 2f 31 02 05
a2 00 63 37 2f 30 02 19 0e d8
a2 00 63 37 2f 31 02 19 13 88
a2 00 63 38 2f 30 02 18 7d
a2 00 63 38 2f 31 02 19 03 84
a2 00 61 39 02 18 64
a2 00 62 31 30 02 0f
a2 00 64 31 31 2f 30 02 00
a2 00 62 31 33 02 1a 51 82 42 8f
a2 00 62 31 34 03 66 2b 30 32 3a 30 30
a2 00 62 31 36 03 61 55`

func TestSenMLCBOR_SpecExample_DeviceObjectInstance(t *testing.T) {
	want := unhex(t, specSenMLCBORDevice)
	got, err := Encode(FormatSenMLCBOR, InstancePath(3, 0), deviceEntries())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encode:\n got % x\nwant % x (%v)", got, want, err)
	}
	dec, err := Decode(FormatSenMLCBOR, InstancePath(3, 0), want, deviceTypes)
	if err != nil || !entriesEqual(dec, deviceEntries()) {
		t.Fatalf("decode: %v %v", dec, err)
	}
}

// RFC 8428 4.4: a pack with an unknown field ending in "_" is rejected;
// other unknown fields (units, bver...) are ignored.
func TestSenML_MustUnderstandFields(t *testing.T) {
	ok := `[{"bn":"/3/0/","bver":10,"n":"9","u":"%","v":95}]`
	if _, err := Decode(FormatSenMLJSON, Root, []byte(ok), deviceTypes); err != nil {
		t.Fatalf("ordinary fields: %v", err)
	}
	bad := `[{"bn":"/3/0/","n":"9","v":95},{"n":"10","v":1,"later_":1}]`
	if _, err := Decode(FormatSenMLJSON, Root, []byte(bad), deviceTypes); err == nil || !strings.Contains(err.Error(), `record 1: field "later_" must be understood`) {
		t.Fatalf("json: %v", err)
	}
	// [{0: "/3/0/9", 2: 95, "later_": 1}]
	cb := unhex(t, "81 a3 00 66 2f 33 2f 30 2f 39 02 18 5f 66 6c 61 74 65 72 5f 01")
	if _, err := Decode(FormatSenMLCBOR, Root, cb, deviceTypes); err == nil || !strings.Contains(err.Error(), `field "later_" must be understood`) {
		t.Fatalf("cbor: %v", err)
	}
}
