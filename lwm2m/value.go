package lwm2m

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is an LwM2M resource data type (LwM2M Core Appendix C).
type Type uint8

// The LwM2M data types. TypeNone is the type of executable resources and of
// values whose type is not known yet (a TLV value decoded without a model is
// TypeOpaque until the model types it).
const (
	TypeNone Type = iota
	TypeString
	TypeInteger
	TypeUnsignedInteger
	TypeFloat
	TypeBoolean
	TypeOpaque
	TypeTime
	TypeObjLnk
	TypeCoreLnk
)

var typeNames = [...]string{"none", "string", "integer", "unsigned integer", "float", "boolean", "opaque", "time", "objlnk", "corelnk"}

// String names the type as LwM2M Core Appendix C does, lower-case.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType reads the type names used by OMA DDF files and by our JSON API
// ("String", "Integer", "Unsigned Integer", "Float", "Boolean", "Opaque",
// "Time", "Objlnk", "Corelnk", "none"), case-insensitively.
func ParseType(s string) (Type, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return TypeNone, nil
	case "string":
		return TypeString, nil
	case "integer":
		return TypeInteger, nil
	case "unsigned integer", "unsignedinteger", "unsigned":
		return TypeUnsignedInteger, nil
	case "float":
		return TypeFloat, nil
	case "boolean":
		return TypeBoolean, nil
	case "opaque":
		return TypeOpaque, nil
	case "time":
		return TypeTime, nil
	case "objlnk":
		return TypeObjLnk, nil
	case "corelnk":
		return TypeCoreLnk, nil
	}
	return TypeNone, fmt.Errorf("lwm2m: unknown data type %q", s)
}

// ObjLnk is an object link: a reference to /Object/Instance (LwM2M Core C.1).
type ObjLnk struct{ Object, Instance uint16 }

// String renders "3:0" as in the text format.
func (l ObjLnk) String() string {
	return strconv.FormatUint(uint64(l.Object), 10) + ":" + strconv.FormatUint(uint64(l.Instance), 10)
}

// ParseObjLnk parses "3:0". Errors wrap ErrConvert.
func ParseObjLnk(s string) (ObjLnk, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return ObjLnk{}, fmt.Errorf("%w: objlnk %q: want OBJ:INST", ErrConvert, s)
	}
	o, err1 := strconv.ParseUint(a, 10, 16)
	i, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil {
		return ObjLnk{}, fmt.Errorf("%w: objlnk %q: want two 16-bit numbers", ErrConvert, s)
	}
	return ObjLnk{uint16(o), uint16(i)}, nil
}

// Value is one typed LwM2M value. The zero value is a TypeNone value.
// Values are immutable once built; Opaque returns the stored slice, which
// callers must not modify.
type Value struct {
	typ Type
	s   string // String, CoreLnk
	i   int64  // Integer, Time (Unix seconds), Boolean (0/1)
	u   uint64 // UnsignedInteger
	f   float64
	b   []byte
	l   ObjLnk
}

// String makes a String value.
func String(s string) Value { return Value{typ: TypeString, s: s} }

// Integer makes a (signed, 64-bit) Integer value.
func Integer(i int64) Value { return Value{typ: TypeInteger, i: i} }

// Unsigned makes an Unsigned Integer value (LwM2M 1.1).
func Unsigned(u uint64) Value { return Value{typ: TypeUnsignedInteger, u: u} }

// Float makes a Float value.
func Float(f float64) Value { return Value{typ: TypeFloat, f: f} }

// Opaque makes an Opaque value holding b (not copied).
func Opaque(b []byte) Value { return Value{typ: TypeOpaque, b: b} }

// Time makes a Time value; LwM2M times are whole Unix seconds.
func Time(t time.Time) Value { return Value{typ: TypeTime, i: t.Unix()} }

// TimeUnix makes a Time value from Unix seconds.
func TimeUnix(sec int64) Value { return Value{typ: TypeTime, i: sec} }

// Link makes an Objlnk value pointing at /o/i.
func Link(o, i uint16) Value { return Value{typ: TypeObjLnk, l: ObjLnk{o, i}} }

// ObjLnkValue makes an Objlnk value.
func ObjLnkValue(l ObjLnk) Value { return Value{typ: TypeObjLnk, l: l} }

// CoreLnk makes a Corelnk value (a CoRE link-format string).
func CoreLnk(s string) Value { return Value{typ: TypeCoreLnk, s: s} }

// None makes the value of an executable resource: no value.
func None() Value { return Value{} }

// Boolean makes a Boolean value.
func Boolean(b bool) Value {
	v := Value{typ: TypeBoolean}
	if b {
		v.i = 1
	}
	return v
}

// Type tells the value's type.
func (v Value) Type() Type { return v.typ }

// Str returns a String or Corelnk value, and the text form of others.
// Accessors return the Go value; they return the zero value for another
// type except where a lossless conversion exists (Int of an Unsigned that
// fits, Float of an Integer, ...).
func (v Value) Str() string {
	if v.typ == TypeString || v.typ == TypeCoreLnk {
		return v.s
	}
	return v.Text()
}

// Int returns an Integer or Time value, or another number converted.
func (v Value) Int() int64 {
	switch v.typ {
	case TypeUnsignedInteger:
		if v.u <= math.MaxInt64 {
			return int64(v.u)
		}
		return 0
	case TypeFloat:
		return int64(v.f)
	}
	return v.i
}

// Uint returns an Unsigned value, or a non-negative number converted.
func (v Value) Uint() uint64 {
	switch v.typ {
	case TypeUnsignedInteger:
		return v.u
	case TypeInteger, TypeTime:
		if v.i >= 0 {
			return uint64(v.i)
		}
		return 0
	case TypeFloat:
		if v.f >= 0 {
			return uint64(v.f)
		}
	}
	return 0
}

// Float returns a Float value, or an integer converted.
func (v Value) Float() float64 {
	switch v.typ {
	case TypeFloat:
		return v.f
	case TypeUnsignedInteger:
		return float64(v.u)
	case TypeInteger, TypeTime:
		return float64(v.i)
	}
	return 0
}

// Bool returns a Boolean value.
func (v Value) Bool() bool { return v.typ == TypeBoolean && v.i != 0 }

// Bytes returns an Opaque value's bytes, which callers must not modify.
func (v Value) Bytes() []byte { return v.b }

// Time returns a Time value as a UTC time.
func (v Value) Time() time.Time { return time.Unix(v.i, 0).UTC() }

// ObjLnk returns an Objlnk value.
func (v Value) ObjLnk() ObjLnk { return v.l }

// IsNone reports whether the value is TypeNone (no value).
func (v Value) IsNone() bool { return v.typ == TypeNone }

// Equal compares type and content.
func (v Value) Equal(w Value) bool {
	if v.typ != w.typ {
		return false
	}
	switch v.typ {
	case TypeFloat:
		return v.f == w.f || (math.IsNaN(v.f) && math.IsNaN(w.f))
	case TypeOpaque:
		return string(v.b) == string(w.b)
	}
	return v.s == w.s && v.i == w.i && v.u == w.u && v.l == w.l
}

// Text renders the value as the text/plain content format does
// (LwM2M Core 7.4.1): opaque as base64, booleans as 0/1, time as seconds.
func (v Value) Text() string {
	switch v.typ {
	case TypeString, TypeCoreLnk:
		return v.s
	case TypeInteger, TypeTime:
		return strconv.FormatInt(v.i, 10)
	case TypeUnsignedInteger:
		return strconv.FormatUint(v.u, 10)
	case TypeFloat:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case TypeBoolean:
		return strconv.FormatInt(v.i, 10)
	case TypeOpaque:
		return base64.StdEncoding.EncodeToString(v.b)
	case TypeObjLnk:
		return v.l.String()
	}
	return ""
}

// String renders "integer(100)" for logs and test failures.
func (v Value) String() string { return v.typ.String() + "(" + v.Text() + ")" }

// ErrConvert is returned when a value cannot be read as another type.
var ErrConvert = errors.New("lwm2m: value conversion")

// ParseText reads text/plain content as type t (LwM2M Core 7.4.1).
func ParseText(t Type, s string) (Value, error) {
	switch t {
	case TypeString:
		return String(s), nil
	case TypeCoreLnk:
		return CoreLnk(s), nil
	case TypeInteger:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: %q is not an integer", ErrConvert, s)
		}
		return Integer(i), nil
	case TypeTime:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: %q is not a time in seconds", ErrConvert, s)
		}
		return TimeUnix(i), nil
	case TypeUnsignedInteger:
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: %q is not an unsigned integer", ErrConvert, s)
		}
		return Unsigned(u), nil
	case TypeFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: %q is not a float", ErrConvert, s)
		}
		return Float(f), nil
	case TypeBoolean:
		switch s {
		case "0", "false":
			return Boolean(false), nil
		case "1", "true":
			return Boolean(true), nil
		}
		return Value{}, fmt.Errorf("%w: %q is not a boolean (0 or 1)", ErrConvert, s)
	case TypeOpaque:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Value{}, fmt.Errorf("%w: opaque text is not base64: %v", ErrConvert, err)
		}
		return Opaque(b), nil
	case TypeObjLnk:
		l, err := ParseObjLnk(s)
		if err != nil {
			return Value{}, err
		}
		return ObjLnkValue(l), nil
	case TypeNone:
		return None(), nil
	}
	return Value{}, fmt.Errorf("%w: unknown type %v", ErrConvert, t)
}

// Entry is one value at a resource or resource-instance path: the flat form
// every content format decodes to and encodes from.
type Entry struct {
	Path  Path
	Value Value
}
