package lwm2m

import (
	"errors"
	"math"
	"testing"
)

// Decoders of formats that carry only "a number" or "a string" convert to
// the model's type, losslessly or not at all.
func TestConvert(t *testing.T) {
	ok := []struct {
		in   Value
		t    Type
		want Value
	}{
		{Float(3), TypeInteger, Integer(3)},
		{Float(3), TypeUnsignedInteger, Unsigned(3)},
		{Float(1367491215), TypeTime, TimeUnix(1367491215)},
		{Integer(7), TypeFloat, Float(7)},
		{Integer(7), TypeUnsignedInteger, Unsigned(7)},
		{Integer(7), TypeTime, TimeUnix(7)},
		{Unsigned(7), TypeInteger, Integer(7)},
		{Unsigned(math.MaxUint64), TypeFloat, Float(math.MaxUint64)},
		{TimeUnix(5), TypeInteger, Integer(5)},
		{String("3:0"), TypeObjLnk, Link(3, 0)},
		{String("</1>"), TypeCoreLnk, CoreLnk("</1>")},
		{CoreLnk("</1>"), TypeString, String("</1>")},
		{Boolean(true), TypeNone, Boolean(true)},
	}
	for _, c := range ok {
		got, err := convert(c.in, c.t)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("convert(%v, %v) = %v, %v; want %v", c.in, c.t, got, err, c.want)
		}
	}
	bad := []struct {
		in Value
		t  Type
	}{
		{Float(3.5), TypeInteger},
		{Float(-1), TypeUnsignedInteger},
		{Float(1e300), TypeInteger},
		{Float(math.NaN()), TypeInteger},
		{Integer(-1), TypeUnsignedInteger},
		{Unsigned(math.MaxUint64), TypeInteger},
		{String("1"), TypeInteger},
		{String("x"), TypeObjLnk},
		{Integer(1), TypeBoolean},
		{Integer(1), TypeString},
		{Opaque([]byte("a")), TypeString},
	}
	for _, c := range bad {
		if got, err := convert(c.in, c.t); !errors.Is(err, ErrConvert) {
			t.Errorf("convert(%v, %v) = %v, %v; want ErrConvert", c.in, c.t, got, err)
		}
	}
}
