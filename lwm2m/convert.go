package lwm2m

import (
	"fmt"
	"math"
)

// convert turns a value decoded with the type its wire form suggests (a
// SenML "v" number, a CBOR integer, a JSON string) into the resource's
// type t. Only lossless conversions are made: 3.0 becomes Integer 3, 3.5
// does not.
func convert(v Value, t Type) (Value, error) {
	if t == TypeNone || v.typ == t {
		return v, nil
	}
	switch t {
	case TypeInteger, TypeTime:
		var i int64
		switch v.typ {
		case TypeInteger, TypeTime:
			i = v.i
		case TypeUnsignedInteger:
			if v.u > math.MaxInt64 {
				return Value{}, fmt.Errorf("%w: %d overflows %v", ErrConvert, v.u, t)
			}
			i = int64(v.u)
		case TypeFloat:
			if v.f != math.Trunc(v.f) || v.f < -(1<<63) || v.f >= 1<<63 {
				return Value{}, fmt.Errorf("%w: %v is not an %v", ErrConvert, v.f, t)
			}
			i = int64(v.f)
		default:
			return Value{}, fmt.Errorf("%w: %v value for a resource of type %v", ErrConvert, v.typ, t)
		}
		if t == TypeTime {
			return TimeUnix(i), nil
		}
		return Integer(i), nil
	case TypeUnsignedInteger:
		switch v.typ {
		case TypeInteger, TypeTime:
			if v.i < 0 {
				return Value{}, fmt.Errorf("%w: %d is negative, want %v", ErrConvert, v.i, t)
			}
			return Unsigned(uint64(v.i)), nil
		case TypeFloat:
			if v.f != math.Trunc(v.f) || v.f < 0 || v.f >= 1<<64 {
				return Value{}, fmt.Errorf("%w: %v is not an %v", ErrConvert, v.f, t)
			}
			return Unsigned(uint64(v.f)), nil
		}
	case TypeFloat:
		switch v.typ {
		case TypeInteger, TypeTime:
			return Float(float64(v.i)), nil
		case TypeUnsignedInteger:
			return Float(float64(v.u)), nil
		}
	case TypeString:
		if v.typ == TypeCoreLnk {
			return String(v.s), nil
		}
	case TypeCoreLnk:
		if v.typ == TypeString {
			return CoreLnk(v.s), nil
		}
	case TypeObjLnk:
		if v.typ == TypeString || v.typ == TypeCoreLnk {
			l, err := ParseObjLnk(v.s)
			if err != nil {
				return Value{}, fmt.Errorf("%w: %v", ErrConvert, err)
			}
			return ObjLnkValue(l), nil
		}
	}
	return Value{}, fmt.Errorf("%w: %v value for a resource of type %v", ErrConvert, v.typ, t)
}
