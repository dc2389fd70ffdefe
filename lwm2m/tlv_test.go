package lwm2m

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// LwM2M 1.0 Core 6.4.3.1, "Single Object Instance Request Example": the
// TLV answer to a Read of /3/0 (the bytes of the table, one resource a line).
const specTLVDevice = `
C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
C8 02 09 33 34 35 30 30 30 31 32 33
C3 03 31 2E 30
86 06 41 00 01 41 01 05
88 07 08 42 00 0E D8 42 01 13 88
87 08 41 00 7D 42 01 03 84
C1 09 64
C1 0A 0F
83 0B 41 00 00
C4 0D 51 82 42 8F
C6 0E 2B 30 32 3A 30 30
C1 10 55`

func TestTLV_SpecExample_DeviceObjectInstance(t *testing.T) {
	want := unhex(t, specTLVDevice)
	got, err := Encode(FormatTLV, InstancePath(3, 0), deviceEntries())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode /3/0:\n got % X\nwant % X", got, want)
	}
	dec, err := Decode(FormatTLV, InstancePath(3, 0), want, deviceTypes)
	if err != nil {
		t.Fatal(err)
	}
	if !entriesEqual(dec, deviceEntries()) {
		t.Fatalf("decode /3/0: got %v", dec)
	}
}

// LwM2M 1.0 Core 6.4.3.1, "Single Object Instance Request Example", Read of
// the multiple resource /3/0/6 (Available Power Sources): 86 06 41 00 01 41 01 05.
func TestTLV_SpecExample_MultipleResource(t *testing.T) {
	want := unhex(t, "86 06 41 00 01 41 01 05")
	e := deviceEntries()[4:6]
	got, err := Encode(FormatTLV, ResourcePath(3, 0, 6), e)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encode /3/0/6: % X, %v", got, err)
	}
	dec, err := Decode(FormatTLV, ResourcePath(3, 0, 6), want, deviceTypes)
	if err != nil || !entriesEqual(dec, e) {
		t.Fatalf("decode /3/0/6: %v, %v", dec, err)
	}
}

// A Read of a single resource /3/0/9 answers a resource TLV: C1 09 64.
func TestTLV_SpecExample_SingleResource(t *testing.T) {
	want := unhex(t, "C1 09 64")
	e := []Entry{{ResourcePath(3, 0, 9), Integer(100)}}
	got, err := Encode(FormatTLV, ResourcePath(3, 0, 9), e)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encode: % X, %v", got, err)
	}
	dec, err := Decode(FormatTLV, ResourcePath(3, 0, 9), want, deviceTypes)
	if err != nil || !entriesEqual(dec, e) {
		t.Fatalf("decode: %v, %v", dec, err)
	}
}

// LwM2M 1.0 Core 6.4.3.2, "Multiple Object Instance Request Example": a
// Read of /2 (Access Control) answers two object-instance TLVs. The bytes
// are built from the spec's table (instance 0: object 1, instance 0, ACL
// {127: 7}, owner 127; instance 2: object 3, instance 0, ACL {127: 7,
// 310: 1}, owner 127), with 16-bit resource-instance ID 310.
func TestTLV_SpecExample_MultipleObjectInstances(t *testing.T) {
	want := unhex(t, `
08 00 0E  C1 00 01  C1 01 00  83 02 41 7F 07  C1 03 7F
08 02 12  C1 00 03  C1 01 00  87 02 41 7F 07 61 01 36 01  C1 03 7F`)
	types := TypeMap{}
	for _, i := range []uint16{0, 2} {
		for r := uint16(0); r < 4; r++ {
			types[ResourcePath(2, i, r)] = TypeInteger
		}
	}
	e := []Entry{
		{ResourcePath(2, 0, 0), Integer(1)},
		{ResourcePath(2, 0, 1), Integer(0)},
		{ResourceInstancePath(2, 0, 2, 127), Integer(7)},
		{ResourcePath(2, 0, 3), Integer(127)},
		{ResourcePath(2, 2, 0), Integer(3)},
		{ResourcePath(2, 2, 1), Integer(0)},
		{ResourceInstancePath(2, 2, 2, 127), Integer(7)},
		{ResourceInstancePath(2, 2, 2, 310), Integer(1)},
		{ResourcePath(2, 2, 3), Integer(127)},
	}
	got, err := Encode(FormatTLV, ObjectPath(2), e)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encode /2:\n got % X\nwant % X (%v)", got, want, err)
	}
	dec, err := Decode(FormatTLV, ObjectPath(2), want, types)
	if err != nil || !entriesEqual(dec, e) {
		t.Fatalf("decode /2: %v, %v", dec, err)
	}
}

// LwM2M 1.0 Core 6.4.3.2 A): the same Device instance wrapped in an
// object-instance TLV of 0x79 bytes, as a Read of /3 answers it; devices
// (Wakaama among them) also send it for a Read of /3/0.
func TestTLV_SpecExample_DeviceWithInstanceTLV(t *testing.T) {
	data := unhex(t, "08 00 79"+specTLVDevice)
	for _, base := range []Path{ObjectPath(3), InstancePath(3, 0)} {
		dec, err := Decode(FormatTLV, base, data, deviceTypes)
		if err != nil || !entriesEqual(dec, deviceEntries()) {
			t.Fatalf("decode %v: %v, %v", base, dec, err)
		}
	}
	enc, err := Encode(FormatTLV, ObjectPath(3), deviceEntries())
	if err != nil || !bytes.Equal(enc, data) {
		t.Fatalf("encode /3:\n got % X\nwant % X (%v)", enc, data, err)
	}
	// A wrapper around a single resource read (/3/0/1) is accepted too,
	// but not one that carries resources outside the request path.
	one := unhex(t, "08 00 09 C8 01 06 63 6C 69 65 6E 74")
	dec, err := Decode(FormatTLV, ResourcePath(3, 0, 1), one, deviceTypes)
	if err != nil || len(dec) != 1 || dec[0].Value.Str() != "client" {
		t.Fatalf("wrapped /3/0/1: %v %v", dec, err)
	}
	if _, err := Decode(FormatTLV, ResourcePath(3, 0, 2), one, deviceTypes); err == nil {
		t.Fatal("wrapped /3/0/1 accepted for a read of /3/0/2")
	}
}

// LwM2M 1.0 Core 6.4.3.2 C): a Read of /1 (Server object) with one
// instance: short server ID 1, lifetime 86400, notification storing true,
// binding "U".
func TestTLV_SpecExample_ServerObject(t *testing.T) {
	want := unhex(t, "08 00 0F C1 00 01 C4 01 00 01 51 80 C1 06 01 C1 07 55")
	types := TypeMap{ResourcePath(1, 0, 0): TypeInteger, ResourcePath(1, 0, 1): TypeInteger, ResourcePath(1, 0, 6): TypeBoolean, ResourcePath(1, 0, 7): TypeString}
	e := []Entry{
		{ResourcePath(1, 0, 0), Integer(1)},
		{ResourcePath(1, 0, 1), Integer(86400)},
		{ResourcePath(1, 0, 6), Boolean(true)},
		{ResourcePath(1, 0, 7), String("U")},
	}
	dec, err := Decode(FormatTLV, ObjectPath(1), want, types)
	if err != nil || !entriesEqual(dec, e) {
		t.Fatalf("decode: %v %v", dec, err)
	}
	enc, err := Encode(FormatTLV, ObjectPath(1), e)
	if err != nil || !bytes.Equal(enc, want) {
		t.Fatalf("encode: % X %v", enc, err)
	}
}

// LwM2M 1.0 Core 6.4.3.3, object links: 1) a single instance of a
// made-up object 65 with a multiple objlnk resource {66:0, 66:1}; 2) two
// instances of object 66 each linking to another instance, the second
// with the "no link" value 65535:65535.
func TestTLV_SpecExample_ObjectLinks(t *testing.T) {
	obj65 := unhex(t, "88 00 0C 44 00 00 42 00 00 44 01 00 42 00 01 C8 01 0D 38 36 31 33 38 30 30 37 35 35 35 30 30 C4 02 12 34 56 78")
	types := TypeMap{ResourcePath(65, 0, 0): TypeObjLnk, ResourcePath(65, 0, 1): TypeString, ResourcePath(65, 0, 2): TypeInteger}
	e65 := []Entry{
		{ResourceInstancePath(65, 0, 0, 0), Link(66, 0)},
		{ResourceInstancePath(65, 0, 0, 1), Link(66, 1)},
		{ResourcePath(65, 0, 1), String("8613800755500")},
		{ResourcePath(65, 0, 2), Integer(305419896)},
	}
	dec, err := Decode(FormatTLV, InstancePath(65, 0), obj65, types)
	if err != nil || !entriesEqual(dec, e65) {
		t.Fatalf("decode /65/0: %v %v", dec, err)
	}
	if enc, err := Encode(FormatTLV, InstancePath(65, 0), e65); err != nil || !bytes.Equal(enc, obj65) {
		t.Fatalf("encode /65/0: % X %v", enc, err)
	}
	obj66 := unhex(t, `08 00 26 C8 00 0B 6D 79 53 65 72 76 69 63 65 20 31 C8 01 0F 49 6E 74 65 72 6E 65 74 2E 31 35 2E 32 33 34 C4 02 00 43 00 00
08 01 26 C8 00 0B 6D 79 53 65 72 76 69 63 65 20 32 C8 01 0F 49 6E 74 65 72 6E 65 74 2E 31 35 2E 32 33 35 C4 02 FF FF FF FF`)
	for _, i := range []uint16{0, 1} {
		types[ResourcePath(66, i, 0)] = TypeString
		types[ResourcePath(66, i, 1)] = TypeString
		types[ResourcePath(66, i, 2)] = TypeObjLnk
	}
	e66 := []Entry{
		{ResourcePath(66, 0, 0), String("myService 1")},
		{ResourcePath(66, 0, 1), String("Internet.15.234")},
		{ResourcePath(66, 0, 2), Link(67, 0)},
		{ResourcePath(66, 1, 0), String("myService 2")},
		{ResourcePath(66, 1, 1), String("Internet.15.235")},
		{ResourcePath(66, 1, 2), Link(65535, 65535)},
	}
	dec, err = Decode(FormatTLV, ObjectPath(66), obj66, types)
	if err != nil || !entriesEqual(dec, e66) {
		t.Fatalf("decode /66: %v %v", dec, err)
	}
	if enc, err := Encode(FormatTLV, ObjectPath(66), e66); err != nil || !bytes.Equal(enc, obj66) {
		t.Fatalf("encode /66: % X %v", enc, err)
	}
}

func TestTLV_LengthEncodings(t *testing.T) {
	for _, n := range []int{0, 7, 8, 255, 256, 65535, 65536, 70000} {
		v := Opaque(bytes.Repeat([]byte{0xAB}, n))
		e := []Entry{{ResourcePath(5, 0, 300), v}} // 16-bit ID too
		b, err := Encode(FormatTLV, InstancePath(5, 0), e)
		if err != nil {
			t.Fatal(err)
		}
		wantType := byte(0xE0)
		switch {
		case n < 8:
			wantType |= byte(n)
		case n < 256:
			wantType |= 0x08
		case n < 65536:
			wantType |= 0x10
		default:
			wantType |= 0x18
		}
		if b[0] != wantType {
			t.Errorf("len %d: type byte %02X, want %02X", n, b[0], wantType)
		}
		dec, err := Decode(FormatTLV, InstancePath(5, 0), b, nil)
		if err != nil || !entriesEqual(dec, e) {
			t.Errorf("len %d: round trip failed: %v", n, err)
		}
	}
}

func TestTLV_Errors(t *testing.T) {
	cases := []struct {
		name, hex, want string
		base            Path
	}{
		{"length beyond data", "C8 00 14 4F 70", "byte 0: length 20 exceeds remaining 2 bytes", InstancePath(3, 0)},
		{"truncated header", "E8 00", "byte 0: header needs 4 bytes, 2 remain", InstancePath(3, 0)},
		{"instance below instance", "08 01 03 C1 00 01", "byte 0: object instance TLV with ID 1 not expected below /3/0", InstancePath(3, 0)},
		{"resource instance below instance", "41 00 01", "byte 0: resource instance TLV with ID 0 not expected below /3/0", InstancePath(3, 0)},
		{"bad integer size", "C3 09 01 02 03", "byte 0: /3/0/9: integer of 3 bytes", InstancePath(3, 0)},
		{"instance twice", "08 01 03 C1 00 01 08 01 03 C1 00 02", "byte 6: object instance /3/1 given twice", ObjectPath(3)},
		{"resource twice", "C1 09 64 C1 09 65", "byte 3: resource /3/0/9 given twice", InstancePath(3, 0)},
		{"nested length beyond parent", "88 06 02 41 00 05", "byte 3: length 1 exceeds remaining 0 bytes", InstancePath(3, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(FormatTLV, c.base, unhex(t, c.hex), deviceTypes)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrDecode) {
				t.Fatalf("err = %v, want it to contain %q and wrap ErrDecode", err, c.want)
			}
		})
	}
}
