package lwm2m

import (
	"bytes"
	"math"
	"testing"
)

// typedSamples is one value of every type, with the resource type the model
// declares for it, at resources of a made-up object /9999/0.
func typedSamples() ([]Entry, TypeMap) {
	vals := []Value{
		String("héllo, \"world\""),
		String(""),
		Integer(-42),
		Integer(math.MinInt64),
		Integer(math.MaxInt64),
		Unsigned(math.MaxUint64),
		Unsigned(7),
		Float(3.5),
		Float(-1.0e300),
		Float(0.1),
		Boolean(true),
		Boolean(false),
		Opaque([]byte{0, 1, 2, 0xfe, 0xff}),
		Opaque([]byte{}),
		TimeUnix(1367491215),
		TimeUnix(-5),
		Link(3, 0),
		Link(65535, 65535),
		CoreLnk(`</3/0>;ver=1.1,</5>`),
	}
	types := TypeMap{}
	var es []Entry
	for i, v := range vals {
		p := ResourcePath(9999, 0, uint16(i))
		types[p] = v.Type()
		es = append(es, Entry{p, v})
	}
	return es, types
}

func TestRoundTrip_EveryFormatEveryType(t *testing.T) {
	entries, types := typedSamples()
	multi := []Entry{
		{ResourceInstancePath(9999, 0, 100, 0), Integer(1)},
		{ResourceInstancePath(9999, 0, 100, 7), Integer(-1)},
	}
	types[ResourcePath(9999, 0, 100)] = TypeInteger
	all := append(append([]Entry(nil), entries...), multi...)
	for _, cf := range []ContentFormat{FormatTLV, FormatSenMLJSON, FormatSenMLCBOR, FormatLwM2MJSON, FormatLwM2MCBOR} {
		for _, base := range []Path{ObjectPath(9999), InstancePath(9999, 0)} {
			b, err := Encode(cf, base, all)
			if err != nil {
				t.Fatalf("%v encode %v: %v", cf, base, err)
			}
			got, err := Decode(cf, base, b, types)
			if err != nil {
				t.Fatalf("%v decode %v: %v\n%q", cf, base, err, b)
			}
			if !entriesEqual(got, all) {
				t.Errorf("%v %v round trip:\n got %v\nwant %v", cf, base, got, all)
			}
		}
	}
	// Single-value formats, one entry at a time, at its own path.
	for _, cf := range []ContentFormat{FormatText, FormatCBOR, FormatTLV, FormatSenMLJSON, FormatSenMLCBOR, FormatLwM2MJSON, FormatLwM2MCBOR} {
		for _, e := range all {
			b, err := Encode(cf, e.Path, []Entry{e})
			if err != nil {
				t.Fatalf("%v encode %v: %v", cf, e, err)
			}
			got, err := Decode(cf, e.Path, b, types)
			if err != nil {
				t.Fatalf("%v decode %v: %v (% x)", cf, e, err, b)
			}
			if !entriesEqual(got, []Entry{e}) {
				t.Errorf("%v round trip of %v: got %v", cf, e, got)
			}
		}
	}
}

func TestOpaqueFormat_RoundTrip(t *testing.T) {
	p := ResourcePath(5, 0, 0)
	img := bytes.Repeat([]byte{1, 2, 3}, 1000)
	b, err := Encode(FormatOpaque, p, []Entry{{p, Opaque(img)}})
	if err != nil || !bytes.Equal(b, img) {
		t.Fatalf("encode: %v", err)
	}
	got, err := Decode(FormatOpaque, p, b, nil)
	if err != nil || !bytes.Equal(got[0].Value.Bytes(), img) || got[0].Path != p {
		t.Fatalf("decode: %v %v", got, err)
	}
	if _, err := Encode(FormatOpaque, p, []Entry{{p, String("x")}}); err == nil {
		t.Fatal("opaque format accepted a string")
	}
	if _, err := Decode(FormatOpaque, InstancePath(5, 0), b, nil); err == nil {
		t.Fatal("opaque format accepted an instance path")
	}
}

func TestText_UsesModelType(t *testing.T) {
	p := ResourcePath(3, 0, 9)
	got, err := Decode(FormatText, p, []byte("100"), deviceTypes)
	if err != nil || !got[0].Value.Equal(Integer(100)) {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := Decode(FormatText, p, []byte("1x0"), deviceTypes); err == nil {
		t.Fatal("text accepted 1x0 as an integer")
	}
	got, err = Decode(FormatText, p, []byte("100"), nil)
	if err != nil || !got[0].Value.Equal(String("100")) {
		t.Fatalf("untyped: got %v %v", got, err)
	}
}

// Composite payloads (Read-Composite answers, Send) carry several objects
// with the root as base.
func TestComposite_SeveralObjects(t *testing.T) {
	es := []Entry{
		{ResourcePath(1, 0, 1), Integer(300)},
		{ResourcePath(3, 0, 0), String("Open Mobile Alliance")},
		{ResourceInstancePath(3, 0, 6, 1), Integer(5)},
		{ResourcePath(5, 0, 3), Integer(0)},
	}
	for _, cf := range []ContentFormat{FormatSenMLJSON, FormatSenMLCBOR, FormatLwM2MCBOR, FormatLwM2MJSON} {
		b, err := Encode(cf, Root, es)
		if err != nil {
			t.Fatalf("%v: %v", cf, err)
		}
		got, err := Decode(cf, Root, b, nil)
		if err != nil || !entriesEqual(got, es) {
			t.Errorf("%v composite: %v %v", cf, got, err)
		}
	}
	if _, err := Encode(FormatTLV, Root, es); err == nil {
		t.Error("TLV encoded several objects")
	}
}

func TestEncode_RejectsEntriesOutsideBase(t *testing.T) {
	_, err := Encode(FormatSenMLJSON, InstancePath(3, 0), []Entry{{ResourcePath(4, 0, 1), Integer(1)}})
	if err == nil {
		t.Fatal("entry outside the base was encoded")
	}
}

// JSON formats write corelnk strings as they are, not HTML-escaped.
func TestJSON_NoHTMLEscaping(t *testing.T) {
	p := ResourcePath(9999, 0, 1)
	for _, cf := range []ContentFormat{FormatSenMLJSON, FormatLwM2MJSON} {
		b, err := Encode(cf, p, []Entry{{p, CoreLnk("</3/0>;ver=1.1&x")}})
		if err != nil || !bytes.Contains(b, []byte(`"</3/0>;ver=1.1&x"`)) {
			t.Errorf("%v: %s %v", cf, b, err)
		}
	}
}
