package lwm2m

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// The CBOR content format (60, LwM2M Core 7.4.5) carries one value of a
// single resource or resource instance as one CBOR data item (RFC 8949).
// LwM2M CBOR and SenML CBOR share the item mapping below.

// cborDec is the decoding mode of every CBOR-based format: bounded nesting
// and container sizes, so hostile input cannot make us allocate without
// bound, and duplicate map keys rejected (RFC 8949 5.6: a map with
// duplicate keys is not valid, and LwM2M gives no meaning to one).
var cborDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  16,
		MaxArrayElements: 65536,
		MaxMapPairs:      65536,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthAllowed,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err) // the options above are constant
	}
	return dm
}()

// cborEnc writes floats in the shortest form that keeps their value
// (RFC 8949 4.2.2 preferred serialization). Struct fields keep their
// declared order, so SenML records start with "bn" as in RFC 8428's
// examples.
var cborEnc = func() cbor.EncMode {
	em, err := cbor.EncOptions{
		ShortestFloat: cbor.ShortestFloat16,
	}.EncMode()
	if err != nil {
		panic(err) // the options above are constant
	}
	return em
}()

// cborItem maps a value to the Go value fxamacker encodes as its LwM2M CBOR
// item (LwM2M Core Table 7.4.5-1): integers as major types 0/1, floats as
// major type 7, strings and corelnk as text, opaque as byte string, time as
// tag 1 (epoch seconds) around an integer, objlnk as text "3:0".
func cborItem(v Value) (any, error) {
	switch v.Type() {
	case TypeString, TypeCoreLnk:
		return v.s, nil
	case TypeInteger:
		return v.i, nil
	case TypeUnsignedInteger:
		return v.u, nil
	case TypeFloat:
		return v.f, nil
	case TypeBoolean:
		return v.i != 0, nil
	case TypeOpaque:
		if v.b == nil {
			return []byte{}, nil
		}
		return v.b, nil
	case TypeTime:
		return cbor.Tag{Number: 1, Content: v.i}, nil
	case TypeObjLnk:
		return v.l.String(), nil
	}
	return nil, fmt.Errorf("lwm2m: cbor: cannot encode a %v value", v.Type())
}

// valueOfCBOR maps a decoded CBOR item back to a value with the type the
// item suggests; convert then applies the model's type.
func valueOfCBOR(x any) (Value, error) {
	switch x := x.(type) {
	case uint64:
		if x <= math.MaxInt64 {
			return Integer(int64(x)), nil
		}
		return Unsigned(x), nil
	case int64:
		return Integer(x), nil
	case float64:
		return Float(x), nil
	case bool:
		return Boolean(x), nil
	case string:
		return String(x), nil
	case []byte:
		return Opaque(x), nil
	case time.Time:
		return TimeUnix(x.Unix()), nil
	case cbor.Tag:
		if x.Number == 1 {
			switch c := x.Content.(type) {
			case uint64:
				if c <= math.MaxInt64 {
					return TimeUnix(int64(c)), nil
				}
			case int64:
				return TimeUnix(c), nil
			case float64:
				if c == math.Trunc(c) && math.Abs(c) < 1<<62 {
					return TimeUnix(int64(c)), nil
				}
			}
		}
		return Value{}, fmt.Errorf("unsupported tag %d", x.Number)
	case nil:
		return Value{}, errors.New("null where a value was expected")
	}
	return Value{}, fmt.Errorf("unsupported CBOR item %T", x)
}

// typedCBOR decodes one item for path p and types it by the model.
func typedCBOR(x any, p Path, types TypeResolver) (Value, error) {
	v, err := valueOfCBOR(x)
	if err != nil {
		return Value{}, err
	}
	if t, ok := resourceType(types, p); ok {
		return convert(v, t)
	}
	return v, nil
}

func encodeCBORValue(entries []Entry) ([]byte, error) {
	e, err := single("cbor", entries)
	if err != nil {
		return nil, err
	}
	x, err := cborItem(e.Value)
	if err != nil {
		return nil, err
	}
	return cborEnc.Marshal(x)
}

func decodeCBORValue(base Path, data []byte, types TypeResolver) ([]Entry, error) {
	if err := singleValueBase("cbor", base); err != nil {
		return nil, err
	}
	var x any
	rest, err := cborDec.UnmarshalFirst(data, &x)
	if err != nil {
		return nil, fmt.Errorf("%w: cbor: %v", ErrDecode, err)
	}
	if len(rest) != 0 {
		return nil, decodeErr("cbor", len(data)-len(rest), "%d bytes after the value", len(rest))
	}
	v, err := typedCBOR(x, base, types)
	if err != nil {
		return nil, fmt.Errorf("%w: cbor %v: %w", ErrDecode, base, err)
	}
	return []Entry{{Path: base, Value: v}}, nil
}
