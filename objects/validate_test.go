package objects

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/fotastack/fota/lwm2m"
)

func entry(path string, v lwm2m.Value) lwm2m.Entry {
	return lwm2m.Entry{Path: lwm2m.MustParsePath(path), Value: v}
}

func TestValidate(t *testing.T) {
	r := Default()
	long := strings.Repeat("x", 256)
	cases := []struct {
		name  string
		op    Op
		e     lwm2m.Entry
		want  error // nil: valid
		words string
		code  uint8
	}{
		{"package URI", OpWrite, entry("/5/0/1", lwm2m.String("coaps://fw.example/a.bin")), nil, "", 0},
		{"empty package URI resets", OpWrite, entry("/5/0/1", lwm2m.String("")), nil, "", 0},
		{"package", OpWrite, entry("/5/0/0", lwm2m.Opaque([]byte{1, 2, 3})), nil, "", 0},
		{"lifetime unsigned", OpWrite, entry("/1/0/1", lwm2m.Unsigned(300)), nil, "", 0},
		{"lifetime from integer", OpWrite, entry("/1/0/1", lwm2m.Integer(300)), nil, "", 0},
		{"current time from integer", OpWrite, entry("/3/0/13", lwm2m.Integer(1700000000)), nil, "", 0},
		{"ACL instance", OpWrite, entry("/2/0/2/101", lwm2m.Integer(7)), nil, "", 0},
		{"create read-only ACL object ID", OpCreate, entry("/2/1/0", lwm2m.Integer(5)), nil, "", 0},
		{"bootstrap writes security URI", OpBootstrapWrite, entry("/0/0/0", lwm2m.String("coaps://127.0.0.1:5684")), nil, "", 0},
		{"bootstrap writes read-only server ID", OpBootstrapWrite, entry("/1/0/0", lwm2m.Integer(101)), nil, "", 0},
		{"read state", OpRead, entry("/5/0/3", lwm2m.Integer(2)), nil, "", 0},
		{"read error code instance", OpRead, entry("/3/0/11/0", lwm2m.Integer(0)), nil, "", 0},
		{"read latitude TLV float", OpRead, entry("/6/0/0", lwm2m.Opaque(f32(-43.5))), nil, "", 0},

		{"unknown object", OpWrite, entry("/42/0/0", lwm2m.Integer(1)), ErrUnknownObject, "unknown object 42", CodeNotFound},
		{"unused resource 5/4", OpWrite, entry("/5/0/4", lwm2m.Integer(1)), ErrUnknownResource, "unknown resource 4 in object 5", CodeNotFound},
		{"write read-only state", OpWrite, entry("/5/0/3", lwm2m.Integer(1)), ErrNotWritable, `"State" has operations R`, CodeMethodNotAllowed},
		{"write security object", OpWrite, entry("/0/0/0", lwm2m.String("coap://x")), ErrNotWritable, "only by a Bootstrap-Server", CodeMethodNotAllowed},
		{"write executable", OpWrite, entry("/3/0/4", lwm2m.None()), ErrNotWritable, `"Reboot" is executable`, CodeMethodNotAllowed},
		{"bootstrap write executable", OpBootstrapWrite, entry("/5/0/2", lwm2m.String("")), ErrNotWritable, "executable", CodeMethodNotAllowed},
		{"create read-only without create", OpWrite, entry("/2/1/0", lwm2m.Integer(5)), ErrNotWritable, "", CodeMethodNotAllowed},
		{"integer into string", OpWrite, entry("/5/0/1", lwm2m.Integer(5)), ErrTypeMismatch, "want string, have integer", CodeBadRequest},
		{"string into boolean", OpWrite, entry("/1/0/6", lwm2m.String("yes")), ErrTypeMismatch, "want boolean", CodeBadRequest},
		{"negative lifetime", OpWrite, entry("/1/0/1", lwm2m.Integer(-1)), ErrTypeMismatch, "negative", CodeBadRequest},
		{"3-byte TLV integer", OpWrite, entry("/1/0/1", lwm2m.Opaque([]byte{0, 1, 2})), ErrTypeMismatch, "3 bytes", CodeBadRequest},
		{"fraction into integer", OpWrite, entry("/5/0/11", lwm2m.Float(1.5)), ErrTypeMismatch, "whole number", CodeBadRequest},
		{"state above 3", OpRead, entry("/5/0/3", lwm2m.Integer(4)), ErrOutOfRange, "4 is outside 0..3", CodeBadRequest},
		{"severity 3", OpWrite, entry("/5/0/11", lwm2m.Integer(3)), ErrOutOfRange, "outside 0..2", CodeBadRequest},
		{"package URI 256 bytes", OpWrite, entry("/5/0/1", lwm2m.String(long)), ErrOutOfRange, "length 256 bytes is outside 0..255", CodeBadRequest},
		{"short server ID 0", OpBootstrapWrite, entry("/0/0/10", lwm2m.Integer(0)), ErrOutOfRange, "outside 1..65534", CodeBadRequest},
		{"short server ID 65535", OpRead, entry("/1/0/0", lwm2m.Integer(65535)), ErrOutOfRange, "", CodeBadRequest},
		{"SMS key parameters 5 bytes", OpBootstrapWrite, entry("/0/0/7", lwm2m.Opaque(make([]byte, 5))), ErrOutOfRange, "length 5 bytes is outside 6", CodeBadRequest},
		{"SMS secret key 20 bytes", OpBootstrapWrite, entry("/0/0/8", lwm2m.Opaque(make([]byte, 20))), ErrOutOfRange, "", CodeBadRequest},
		{"ACL 32", OpWrite, entry("/2/0/2/0", lwm2m.Integer(32)), ErrOutOfRange, "", CodeBadRequest},
		{"TLV state 0x04", OpRead, entry("/5/0/3", lwm2m.Opaque([]byte{4})), ErrOutOfRange, "", CodeBadRequest},
		{"multiple resource as single", OpRead, entry("/3/0/11", lwm2m.Integer(0)), ErrMultiplicity, "values go at /3/0/11/<instance>", CodeBadRequest},
		{"single resource as multiple", OpWrite, entry("/5/0/1/0", lwm2m.String("x")), ErrMultiplicity, "single-instance", CodeBadRequest},
		{"instance path", OpWrite, entry("/5/0", lwm2m.Integer(1)), lwm2m.ErrBadPath, "", CodeBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := r.Validate(c.op, []lwm2m.Entry{c.e})
			if c.want == nil {
				if err != nil {
					t.Fatalf("Validate(%v, %v) = %v", c.op, c.e, err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Validate(%v, %v) = %v, want %v", c.op, c.e, err, c.want)
			}
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Path != c.e.Path {
				t.Errorf("error %q is not an *EntryError for %v", err, c.e.Path)
			}
			if !strings.Contains(err.Error(), c.e.Path.String()) || !strings.Contains(err.Error(), c.words) {
				t.Errorf("error %q does not name the path and say %q", err, c.words)
			}
			if got := CoAPCode(err); got != c.code {
				t.Errorf("CoAPCode = %d.%02d, want %d.%02d", got>>5, got&31, c.code>>5, c.code&31)
			}
		})
	}
}

func TestValidateStopsAtFirstBadEntry(t *testing.T) {
	r := Default()
	err := r.Validate(OpWrite, []lwm2m.Entry{
		entry("/1/0/1", lwm2m.Unsigned(60)),
		entry("/1/0/7", lwm2m.String("U")),
		entry("/1/0/0", lwm2m.Integer(1)), // read-only
		entry("/42/0/0", lwm2m.Integer(1)),
	})
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Path.String() != "/1/0/0" || !errors.Is(err, ErrNotWritable) {
		t.Fatalf("err = %v, want ErrNotWritable at /1/0/0", err)
	}
	if err := r.Validate(OpWrite, nil); err != nil {
		t.Errorf("no entries: %v", err)
	}
}

func TestObjectModelValidateUsesThatVersion(t *testing.T) {
	r := Default()
	// A device announcing Firmware Update 1.0 has no Severity (/5/0/11).
	v10 := &ObjectModel{ID: 5, Name: "Firmware Update", Version: "1.0", Resources: map[uint16]*ResourceModel{}}
	for _, id := range []uint16{0, 1, 2, 3, 5, 6, 7, 8, 9} {
		res, _ := r.Resource(lwm2m.ResourcePath(5, 0, id))
		v10.Resources[id] = res
	}
	sev := []lwm2m.Entry{entry("/5/0/11", lwm2m.Integer(1))}
	if err := v10.Validate(OpWrite, sev); !errors.Is(err, ErrUnknownResource) {
		t.Errorf("v1.0 Validate(/5/0/11) = %v, want ErrUnknownResource", err)
	}
	v11, _ := r.GetVersion(5, "1.1")
	if err := v11.Validate(OpWrite, sev); err != nil {
		t.Errorf("v1.1 Validate(/5/0/11) = %v", err)
	}
	if err := v11.Validate(OpWrite, []lwm2m.Entry{entry("/3/0/13", lwm2m.Integer(1))}); !errors.Is(err, ErrUnknownObject) {
		t.Errorf("object 5 model validating /3/0/13: %v, want ErrUnknownObject", err)
	}
}

func f32(f float32) []byte { return binary.BigEndian.AppendUint32(nil, math.Float32bits(f)) }
func f64(f float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)) }

// TestTypedAppliesTLVBinaryRules types opaque TLV values by the model
// (LwM2M Core 7.4.3, Appendix C).
func TestTypedAppliesTLVBinaryRules(t *testing.T) {
	r := Default()
	in := []lwm2m.Entry{
		entry("/3/0/0", lwm2m.Opaque([]byte("Open Mobile Alliance"))),
		entry("/3/0/9", lwm2m.Opaque([]byte{0x64})),                      // 1-byte integer 100
		entry("/3/0/7/0", lwm2m.Opaque([]byte{0x0f, 0xd8})),              // 2-byte integer 4056
		entry("/3/0/13", lwm2m.Opaque([]byte{0x5a, 0x0b, 0x6e, 0x80})),   // time as 4-byte integer
		entry("/3/0/10", lwm2m.Opaque([]byte{0xff, 0xff, 0xff, 0xfe})),   // -2, two's complement
		entry("/1/0/1", lwm2m.Opaque([]byte{0x80, 0, 0, 0, 0, 0, 0, 0})), // unsigned 2^63
		entry("/6/0/0", lwm2m.Opaque(f32(-43.5))),
		entry("/6/0/1", lwm2m.Opaque(f64(153.2176))),
		entry("/1/0/6", lwm2m.Opaque([]byte{1})),
		entry("/3/0/22/0", lwm2m.Opaque([]byte{0x0c, 0xef, 0x00, 0x01})), // 3311:1
		entry("/6/0/4", lwm2m.Opaque([]byte{9, 9})),                      // opaque stays opaque
		entry("/3303/0/5700", lwm2m.Opaque([]byte{1, 2})),                // unknown: unchanged
		entry("/1/0/7", lwm2m.String("UQ")),                              // already typed
	}
	want := []lwm2m.Value{
		lwm2m.String("Open Mobile Alliance"),
		lwm2m.Integer(100),
		lwm2m.Integer(4056),
		lwm2m.TimeUnix(0x5a0b6e80),
		lwm2m.Integer(-2),
		lwm2m.Unsigned(1 << 63),
		lwm2m.Float(-43.5),
		lwm2m.Float(153.2176),
		lwm2m.Boolean(true),
		lwm2m.Link(3311, 1),
		lwm2m.Opaque([]byte{9, 9}),
		lwm2m.Opaque([]byte{1, 2}),
		lwm2m.String("UQ"),
	}
	out, err := r.Typed(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if out[i].Path != in[i].Path || !out[i].Value.Equal(want[i]) {
			t.Errorf("%v: got %v, want %v", in[i].Path, out[i].Value, want[i])
		}
	}
	if in[1].Value.Type() != lwm2m.TypeOpaque {
		t.Error("Typed modified its input")
	}
	if _, err := r.Typed([]lwm2m.Entry{entry("/1/0/6", lwm2m.Opaque([]byte{2}))}); !errors.Is(err, ErrTypeMismatch) {
		t.Errorf("boolean byte 2: err = %v, want ErrTypeMismatch", err)
	}
	if _, err := r.Typed([]lwm2m.Entry{entry("/3/0/0", lwm2m.Opaque([]byte{0xff, 0xfe}))}); !errors.Is(err, ErrTypeMismatch) {
		t.Errorf("non-UTF-8 string: err = %v, want ErrTypeMismatch", err)
	}
}

func TestConvertIsLossless(t *testing.T) {
	ok := []struct {
		in   lwm2m.Value
		to   lwm2m.Type
		want lwm2m.Value
	}{
		{lwm2m.Integer(5), lwm2m.TypeUnsignedInteger, lwm2m.Unsigned(5)},
		{lwm2m.Integer(1 << 53), lwm2m.TypeFloat, lwm2m.Float(1 << 53)},
		{lwm2m.Unsigned(math.MaxInt64), lwm2m.TypeInteger, lwm2m.Integer(math.MaxInt64)},
		{lwm2m.Float(-3), lwm2m.TypeInteger, lwm2m.Integer(-3)},
		{lwm2m.Float(7), lwm2m.TypeTime, lwm2m.TimeUnix(7)},
		{lwm2m.TimeUnix(9), lwm2m.TypeInteger, lwm2m.Integer(9)},
		{lwm2m.Integer(1), lwm2m.TypeBoolean, lwm2m.Boolean(true)},
		{lwm2m.String("42"), lwm2m.TypeInteger, lwm2m.Integer(42)},
		{lwm2m.String("3:1"), lwm2m.TypeObjLnk, lwm2m.Link(3, 1)},
		{lwm2m.String("</3/0>"), lwm2m.TypeCoreLnk, lwm2m.CoreLnk("</3/0>")},
		{lwm2m.CoreLnk("</3/0>"), lwm2m.TypeString, lwm2m.String("</3/0>")},
	}
	for _, c := range ok {
		got, err := Convert(c.in, c.to)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("Convert(%v, %v) = %v, %v; want %v", c.in, c.to, got, err, c.want)
		}
	}
	bad := []struct {
		in lwm2m.Value
		to lwm2m.Type
	}{
		{lwm2m.Unsigned(math.MaxUint64), lwm2m.TypeInteger},
		{lwm2m.Integer(1<<53 + 1), lwm2m.TypeFloat},
		{lwm2m.Unsigned(1<<53 + 1), lwm2m.TypeFloat},
		{lwm2m.Float(1.5), lwm2m.TypeInteger},
		{lwm2m.Float(math.NaN()), lwm2m.TypeUnsignedInteger},
		{lwm2m.Float(1e300), lwm2m.TypeInteger},
		{lwm2m.Float(-1), lwm2m.TypeUnsignedInteger},
		{lwm2m.Integer(2), lwm2m.TypeBoolean},
		{lwm2m.Boolean(true), lwm2m.TypeInteger},
		{lwm2m.Link(3, 0), lwm2m.TypeString},
		{lwm2m.None(), lwm2m.TypeString},
		{lwm2m.String("x"), lwm2m.TypeNone},
		{lwm2m.String("4.5"), lwm2m.TypeInteger},
	}
	for _, c := range bad {
		if got, err := Convert(c.in, c.to); !errors.Is(err, ErrTypeMismatch) {
			t.Errorf("Convert(%v, %v) = %v, %v; want ErrTypeMismatch", c.in, c.to, got, err)
		}
	}
}

func TestCheckComparesIntegersExactly(t *testing.T) {
	// float64 cannot hold 2^63-1; the bound check must still be exact.
	res := &ResourceModel{Type: lwm2m.TypeInteger, Range: "-9223372036854775808..9223372036854775806"}
	if err := res.parseRange(); err != nil {
		t.Fatal(err)
	}
	// The bound parses to 2^63 as a float64, so MaxInt64 is inside.
	if err := res.Check(lwm2m.Integer(math.MaxInt64)); err != nil {
		t.Errorf("MaxInt64: %v", err)
	}
	u := &ResourceModel{Type: lwm2m.TypeUnsignedInteger, Range: "0..65535"}
	u.parseRange()
	for v, want := range map[uint64]bool{0: true, 65535: true, 65536: false, math.MaxUint64: false} {
		if got := u.Check(lwm2m.Unsigned(v)) == nil; got != want {
			t.Errorf("unsigned %d in 0..65535: %v, want %v", v, got, want)
		}
	}
	fr := &ResourceModel{Type: lwm2m.TypeInteger, Range: "0.5..2.5"}
	fr.parseRange()
	for v, want := range map[int64]bool{0: false, 1: true, 2: true, 3: false} {
		if got := fr.Check(lwm2m.Integer(v)) == nil; got != want {
			t.Errorf("integer %d in 0.5..2.5: %v, want %v", v, got, want)
		}
	}
	fl := &ResourceModel{Type: lwm2m.TypeFloat, Range: "-90..90"}
	fl.parseRange()
	for v, want := range map[float64]bool{-90: true, 90.0001: false, math.NaN(): false} {
		if got := fl.Check(lwm2m.Float(v)) == nil; got != want {
			t.Errorf("float %g in -90..90: %v, want %v", v, got, want)
		}
	}
	en := &ResourceModel{Type: lwm2m.TypeString, Range: "U,UQ,S"}
	en.parseRange()
	if en.Check(lwm2m.String("UQ")) != nil || !errors.Is(en.Check(lwm2m.String("T")), ErrOutOfRange) {
		t.Error("enumeration U,UQ,S not enforced")
	}
}

// FuzzConvertOpaque: typing arbitrary TLV bytes by any type never panics,
// and a typed value has the asked type.
func FuzzConvertOpaque(f *testing.F) {
	f.Add([]byte{0x64}, uint8(lwm2m.TypeInteger))
	f.Add([]byte{0x5a, 0x0b, 0x6e, 0x80}, uint8(lwm2m.TypeTime))
	f.Add(f64(153.2176), uint8(lwm2m.TypeFloat))
	f.Add([]byte{1}, uint8(lwm2m.TypeBoolean))
	f.Add([]byte{0x0c, 0xef, 0, 1}, uint8(lwm2m.TypeObjLnk))
	f.Add([]byte("</3/0>"), uint8(lwm2m.TypeCoreLnk))
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, uint8(lwm2m.TypeUnsignedInteger))
	f.Fuzz(func(t *testing.T, b []byte, typ uint8) {
		to := lwm2m.Type(typ % 10)
		v, err := Convert(lwm2m.Opaque(b), to)
		if err != nil {
			if !errors.Is(err, ErrTypeMismatch) {
				t.Fatalf("error %q does not wrap ErrTypeMismatch", err)
			}
			return
		}
		if v.Type() != to {
			t.Fatalf("Convert to %v gave %v", to, v.Type())
		}
	})
}

// FuzzParseRange: any range text for any type parses without panicking,
// and what it yields is well formed.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"0..255", "1..65534", "-40..85", "0-100", "6", "16,32,48", "0..255 bytes", "U,UQ,S", "The possible values", "10..1", "0..2.5"} {
		f.Add(s, uint8(lwm2m.TypeInteger))
		f.Add(s, uint8(lwm2m.TypeString))
	}
	f.Fuzz(func(t *testing.T, s string, typ uint8) {
		r := &ResourceModel{Type: lwm2m.Type(typ % 10), Range: s}
		if err := r.parseRange(); err != nil {
			return
		}
		if len(r.Bounds)+len(r.Lengths) > maxRangeTokens || len(r.Enum) > maxRangeTokens {
			t.Fatalf("%q: %d parts kept", s, len(r.Bounds)+len(r.Lengths)+len(r.Enum))
		}
		for _, iv := range append(r.Bounds, r.Lengths...) {
			if !(iv.Min <= iv.Max) {
				t.Fatalf("%q: bad interval %v", s, iv)
			}
		}
		_ = r.Check(lwm2m.Integer(0))
		_ = r.Check(lwm2m.String(s))
	})
}

func BenchmarkValidateFirmwareWrite(b *testing.B) {
	r := Default()
	entries := []lwm2m.Entry{
		entry("/5/0/1", lwm2m.String("coaps://fw.example/image.bin")),
		entry("/5/0/11", lwm2m.Integer(1)),
		entry("/5/0/13", lwm2m.Unsigned(3600)),
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Validate(OpWrite, entries); err != nil {
			b.Fatal(err)
		}
	}
}
