package lwm2m

import (
	"math"
	"testing"
	"time"
)

func TestValue_Accessors(t *testing.T) {
	if v := Unsigned(math.MaxUint64); v.Int() != 0 || v.Uint() != math.MaxUint64 || v.Float() != math.MaxUint64 {
		t.Errorf("unsigned %v", v)
	}
	if v := Integer(-3); v.Uint() != 0 || v.Int() != -3 || v.Float() != -3 || v.Str() != "-3" {
		t.Errorf("integer %v", v)
	}
	if v := Float(2.5); v.Int() != 2 || v.Uint() != 2 || v.Text() != "2.5" {
		t.Errorf("float %v", v)
	}
	tm := time.Date(2013, 5, 2, 10, 40, 15, 0, time.UTC)
	if v := Time(tm); v.Int() != 1367491215 || !v.Time().Equal(tm) || v.Text() != "1367491215" {
		t.Errorf("time %v", v)
	}
	if v := Boolean(true); !v.Bool() || v.Text() != "1" || Boolean(false).Bool() {
		t.Errorf("boolean %v", v)
	}
	if v := Link(3, 1); v.ObjLnk() != (ObjLnk{3, 1}) || v.Text() != "3:1" {
		t.Errorf("objlnk %v", v)
	}
	if v := Opaque([]byte{1, 2}); string(v.Bytes()) != "\x01\x02" || v.Text() != "AQI=" {
		t.Errorf("opaque %v", v)
	}
	if !None().IsNone() || Integer(0).IsNone() || None().String() != "none()" {
		t.Error("none")
	}
	if Float(math.NaN()).Equal(Float(math.NaN())) != true || Integer(1).Equal(Unsigned(1)) {
		t.Error("Equal")
	}
}

func TestValue_ParseTextAndTypes(t *testing.T) {
	for _, c := range []struct {
		t    Type
		s    string
		want Value
	}{
		{TypeInteger, "-5", Integer(-5)},
		{TypeUnsignedInteger, "18446744073709551615", Unsigned(math.MaxUint64)},
		{TypeFloat, "1.5e3", Float(1500)},
		{TypeBoolean, "1", Boolean(true)},
		{TypeTime, "1367491215", TimeUnix(1367491215)},
		{TypeOpaque, "AQI=", Opaque([]byte{1, 2})},
		{TypeObjLnk, "65535:65535", Link(65535, 65535)},
		{TypeCoreLnk, "</1>", CoreLnk("</1>")},
		{TypeNone, "", None()},
	} {
		got, err := ParseText(c.t, c.s)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseText(%v, %q) = %v, %v", c.t, c.s, got, err)
		}
	}
	for _, c := range []struct {
		t Type
		s string
	}{{TypeBoolean, "2"}, {TypeUnsignedInteger, "-1"}, {TypeOpaque, "!!"}, {TypeObjLnk, "3"}, {TypeObjLnk, "3:70000"}, {TypeFloat, "x"}} {
		if _, err := ParseText(c.t, c.s); err == nil {
			t.Errorf("ParseText(%v, %q) accepted", c.t, c.s)
		}
	}
	for _, s := range []string{"String", "Integer", "Unsigned Integer", "Float", "Boolean", "Opaque", "Time", "Objlnk", "Corelnk", ""} {
		if _, err := ParseType(s); err != nil {
			t.Errorf("ParseType(%q): %v", s, err)
		}
	}
	if ty, _ := ParseType("unsigned integer"); ty.String() != "unsigned integer" {
		t.Errorf("ParseType: %v", ty)
	}
	if _, err := ParseType("decimal"); err == nil {
		t.Error("ParseType accepted decimal")
	}
}

func TestText_InvalidUTF8AndMultipleValues(t *testing.T) {
	_, err := Decode(FormatText, ResourcePath(3, 0, 0), []byte("ab\xffc"), deviceTypes)
	if err == nil || err.Error() != "lwm2m: decode: text/plain: byte 2: invalid UTF-8" {
		t.Fatalf("%v", err)
	}
	if _, err := Encode(FormatText, InstancePath(3, 0), deviceEntries()); err == nil {
		t.Fatal("text/plain encoded several values")
	}
	if _, err := EncodeTimed(FormatTLV, InstancePath(3, 0), nil); err == nil {
		t.Fatal("EncodeTimed accepted TLV")
	}
}

// A resource's history (several timed values of the request path itself,
// as a notification with hqmax sends) and a multiple resource's instances
// under a resource base both round-trip in SenML JSON and CBOR.
func TestEncodeTimedResourceBase(t *testing.T) {
	base := MustParsePath("/4/0/2")
	for _, cf := range []ContentFormat{FormatSenMLJSON, FormatSenMLCBOR} {
		for _, entries := range [][]TimedEntry{
			{
				{Entry: Entry{Path: base, Value: Integer(-70)}, Time: 1700000000},
				{Entry: Entry{Path: base, Value: Integer(-65)}, Time: 1700000010},
				{Entry: Entry{Path: base, Value: Integer(-60)}, Time: 1700000020},
			},
			{
				{Entry: Entry{Path: MustParsePath("/4/0/2/0"), Value: Integer(1)}},
				{Entry: Entry{Path: MustParsePath("/4/0/2/1"), Value: Integer(2)}},
			},
		} {
			b, err := EncodeTimed(cf, base, entries)
			if err != nil {
				t.Fatalf("%v: %v", cf, err)
			}
			got, err := DecodeTimed(cf, base, b, nil)
			if err != nil {
				t.Fatalf("%v: decode %q: %v", cf, b, err)
			}
			if len(got) != len(entries) {
				t.Fatalf("%v: %d records, want %d", cf, len(got), len(entries))
			}
			for i := range got {
				if got[i].Path != entries[i].Path || got[i].Time != entries[i].Time || got[i].Value.Int() != entries[i].Value.Int() {
					t.Fatalf("%v: record %d = %v at %v, want %v at %v", cf, i, got[i].Entry, got[i].Time, entries[i].Entry, entries[i].Time)
				}
			}
		}
	}
}
