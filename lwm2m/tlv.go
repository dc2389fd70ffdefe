package lwm2m

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// OMA-TLV (LwM2M Core 7.4.3): a binary format of nested Type-Length-Value
// records with no data types on the wire. The type byte says what the
// identifier names (bits 7-6), the identifier width (bit 5), and how the
// length is written (bits 4-3: inline in bits 2-0, or in 1, 2 or 3 bytes).

// tlvKind is bits 7-6 of the TLV type byte (LwM2M Core Table 7.4.3-1).
type tlvKind uint8

const (
	tlvObjectInstance   tlvKind = 0 // 00: object instance, value holds resource TLVs
	tlvResourceInstance tlvKind = 1 // 01: resource instance with value
	tlvMultiple         tlvKind = 2 // 10: multiple resource, value holds resource-instance TLVs
	tlvResource         tlvKind = 3 // 11: resource with value
)

var tlvKindNames = [...]string{"object instance", "resource instance", "multiple resource", "resource"}

// tlvMaxLen is the largest length a 24-bit length field can hold.
const tlvMaxLen = 1<<24 - 1

type tlvHeader struct {
	kind       tlvKind
	id         uint16
	start, end int // value bytes
}

type tlvDecoder struct {
	data    []byte
	types   TypeResolver
	entries []Entry
	seen    map[Path]bool
}

func decodeTLV(base Path, data []byte, types TypeResolver) ([]Entry, error) {
	if base.IsRoot() {
		return nil, fmt.Errorf("%w: TLV cannot carry several objects; request path is /", ErrUnsupportedFormat)
	}
	d := tlvDecoder{data: data, types: types, seen: map[Path]bool{}}
	if err := d.level(0, len(data), base, true); err != nil {
		return nil, err
	}
	for _, e := range d.entries {
		if !base.Contains(e.Path) {
			return nil, fmt.Errorf("%w: tlv: %v lies outside the request path %v", ErrDecode, e.Path, base)
		}
	}
	return d.entries, nil
}

// once rejects a second TLV for the same node: two instances or resources
// with one ID would make a write ambiguous.
func (d *tlvDecoder) once(off int, h tlvHeader, p Path) error {
	if d.seen[p] {
		return decodeErr("tlv", off, "%s %v given twice", tlvKindNames[h.kind], p)
	}
	d.seen[p] = true
	return nil
}

func (d *tlvDecoder) header(off, end int) (tlvHeader, error) {
	var h tlvHeader
	t := d.data[off]
	h.kind = tlvKind(t >> 6)
	p := off + 1
	idLen := 1
	if t&0x20 != 0 {
		idLen = 2
	}
	lenLen := int(t>>3) & 3
	if end-p < idLen+lenLen {
		return h, decodeErr("tlv", off, "header needs %d bytes, %d remain", 1+idLen+lenLen, end-off)
	}
	if idLen == 1 {
		h.id = uint16(d.data[p])
	} else {
		h.id = binary.BigEndian.Uint16(d.data[p:])
	}
	p += idLen
	var n int
	if lenLen == 0 {
		n = int(t & 7)
	} else {
		for i := 0; i < lenLen; i++ {
			n = n<<8 | int(d.data[p+i])
		}
	}
	p += lenLen
	if n > end-p {
		return h, decodeErr("tlv", off, "length %d exceeds remaining %d bytes", n, end-p)
	}
	h.start, h.end = p, p+n
	return h, nil
}

// level decodes the TLVs in data[off:end] that lie below ctx. At the top
// level the records may also name the request path itself (a resource TLV
// for a read of /3/0/1, an object-instance wrapper for /3/0), as devices do.
func (d *tlvDecoder) level(off, end int, ctx Path, top bool) error {
	for off < end {
		h, err := d.header(off, end)
		if err != nil {
			return err
		}
		n := ctx.Len()
		c, _ := ctx.Child(h.id)
		switch {
		case h.kind == tlvObjectInstance && n == 1:
			if err = d.once(off, h, c); err == nil {
				err = d.level(h.start, h.end, c, false)
			}
		case h.kind == tlvObjectInstance && n >= 2 && top && h.id == ctx.Instance():
			// An instance wrapper around the answer to a read of /o/i or
			// /o/i/r; decodeTLV drops nothing but checks every entry
			// lies below the request path.
			err = d.level(h.start, h.end, InstancePath(ctx.Object(), ctx.Instance()), false)
		case h.kind == tlvResource && n == 2:
			if err = d.once(off, h, c); err == nil {
				err = d.value(off, h, c)
			}
		case h.kind == tlvResource && n == 3 && top && h.id == ctx.Resource():
			if err = d.once(off, h, ctx); err == nil {
				err = d.value(off, h, ctx)
			}
		case h.kind == tlvMultiple && n == 2:
			if err = d.once(off, h, c); err == nil {
				err = d.level(h.start, h.end, c, false)
			}
		case h.kind == tlvMultiple && n == 3 && top && h.id == ctx.Resource():
			if err = d.once(off, h, ctx); err == nil {
				err = d.level(h.start, h.end, ctx, false)
			}
		case h.kind == tlvResourceInstance && n == 3:
			if err = d.once(off, h, c); err == nil {
				err = d.value(off, h, c)
			}
		case h.kind == tlvResourceInstance && n == 4 && top && h.id == ctx.ResourceInstance():
			if err = d.once(off, h, ctx); err == nil {
				err = d.value(off, h, ctx)
			}
		default:
			return decodeErr("tlv", off, "%s TLV with ID %d not expected below %v", tlvKindNames[h.kind], h.id, ctx)
		}
		if err != nil {
			return err
		}
		off = h.end
	}
	return nil
}

func (d *tlvDecoder) value(off int, h tlvHeader, p Path) error {
	b := d.data[h.start:h.end]
	t, ok := resourceType(d.types, p)
	if !ok {
		d.entries = append(d.entries, Entry{Path: p, Value: Opaque(slices.Clone(b))})
		return nil
	}
	v, err := TLVValue(t, b)
	if err != nil {
		return fmt.Errorf("%w: tlv: byte %d: %v: %v", ErrDecode, off, p, err)
	}
	d.entries = append(d.entries, Entry{Path: p, Value: v})
	return nil
}

// TLVValue reads the value bytes of a TLV as type t (LwM2M Core 7.4.3.1,
// Table 7.4.3-2: integers 1, 2, 4 or 8 bytes big-endian two's complement,
// floats 4 or 8 bytes IEEE 754, booleans one byte 0 or 1, objlnk two 16-bit
// IDs, time as an integer of seconds).
func TLVValue(t Type, b []byte) (Value, error) {
	switch t {
	case TypeString:
		return String(string(b)), nil
	case TypeCoreLnk:
		return CoreLnk(string(b)), nil
	case TypeOpaque:
		return Opaque(slices.Clone(b)), nil
	case TypeNone:
		return None(), nil
	case TypeInteger, TypeTime:
		var i int64
		switch len(b) {
		case 1:
			i = int64(int8(b[0]))
		case 2:
			i = int64(int16(binary.BigEndian.Uint16(b)))
		case 4:
			i = int64(int32(binary.BigEndian.Uint32(b)))
		case 8:
			i = int64(binary.BigEndian.Uint64(b))
		default:
			return Value{}, fmt.Errorf("%v of %d bytes, want 1, 2, 4 or 8", t, len(b))
		}
		if t == TypeTime {
			return TimeUnix(i), nil
		}
		return Integer(i), nil
	case TypeUnsignedInteger:
		switch len(b) {
		case 1:
			return Unsigned(uint64(b[0])), nil
		case 2:
			return Unsigned(uint64(binary.BigEndian.Uint16(b))), nil
		case 4:
			return Unsigned(uint64(binary.BigEndian.Uint32(b))), nil
		case 8:
			return Unsigned(binary.BigEndian.Uint64(b)), nil
		}
		return Value{}, fmt.Errorf("unsigned integer of %d bytes, want 1, 2, 4 or 8", len(b))
	case TypeFloat:
		switch len(b) {
		case 4:
			return Float(float64(math.Float32frombits(binary.BigEndian.Uint32(b)))), nil
		case 8:
			return Float(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
		}
		return Value{}, fmt.Errorf("float of %d bytes, want 4 or 8", len(b))
	case TypeBoolean:
		if len(b) != 1 || b[0] > 1 {
			return Value{}, fmt.Errorf("boolean must be one byte 0 or 1, got % x", b)
		}
		return Boolean(b[0] == 1), nil
	case TypeObjLnk:
		if len(b) != 4 {
			return Value{}, fmt.Errorf("objlnk of %d bytes, want 4", len(b))
		}
		return Link(binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])), nil
	}
	return Value{}, fmt.Errorf("unknown type %v", t)
}

// appendTLVValue appends the TLV value bytes of v, integers in the fewest
// of 1, 2, 4 or 8 bytes.
func appendTLVValue(b []byte, v Value) ([]byte, error) {
	switch v.Type() {
	case TypeString, TypeCoreLnk:
		return append(b, v.s...), nil
	case TypeOpaque:
		return append(b, v.b...), nil
	case TypeNone:
		return b, nil
	case TypeInteger, TypeTime:
		i := v.i
		switch {
		case i >= math.MinInt8 && i <= math.MaxInt8:
			return append(b, byte(i)), nil
		case i >= math.MinInt16 && i <= math.MaxInt16:
			return binary.BigEndian.AppendUint16(b, uint16(i)), nil
		case i >= math.MinInt32 && i <= math.MaxInt32:
			return binary.BigEndian.AppendUint32(b, uint32(i)), nil
		}
		return binary.BigEndian.AppendUint64(b, uint64(i)), nil
	case TypeUnsignedInteger:
		u := v.u
		switch {
		case u <= math.MaxUint8:
			return append(b, byte(u)), nil
		case u <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(b, uint16(u)), nil
		case u <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(b, uint32(u)), nil
		}
		return binary.BigEndian.AppendUint64(b, u), nil
	case TypeFloat:
		if f32 := float32(v.f); float64(f32) == v.f || math.IsNaN(v.f) {
			return binary.BigEndian.AppendUint32(b, math.Float32bits(f32)), nil
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v.f)), nil
	case TypeBoolean:
		return append(b, byte(v.i)), nil
	case TypeObjLnk:
		b = binary.BigEndian.AppendUint16(b, v.l.Object)
		return binary.BigEndian.AppendUint16(b, v.l.Instance), nil
	}
	return nil, fmt.Errorf("lwm2m: tlv: cannot encode %v", v.Type())
}

// appendTLV appends one TLV record around value.
func appendTLV(b []byte, kind tlvKind, id uint16, value []byte) ([]byte, error) {
	n := len(value)
	if n > tlvMaxLen {
		return nil, fmt.Errorf("lwm2m: tlv: value of %d bytes exceeds the 24-bit length limit", n)
	}
	t := byte(kind) << 6
	if id > 0xff {
		t |= 0x20
	}
	switch {
	case n < 8:
		t |= byte(n)
	case n <= 0xff:
		t |= 0x08
	case n <= 0xffff:
		t |= 0x10
	default:
		t |= 0x18
	}
	b = append(b, t)
	if id > 0xff {
		b = binary.BigEndian.AppendUint16(b, id)
	} else {
		b = append(b, byte(id))
	}
	switch t & 0x18 {
	case 0x08:
		b = append(b, byte(n))
	case 0x10:
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	case 0x18:
		b = append(b, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, value...), nil
}

// sortedEntries returns entries ordered by path, keeping the order of
// equal paths.
func sortedEntries(entries []Entry) []Entry {
	s := slices.Clone(entries)
	slices.SortStableFunc(s, func(a, b Entry) int {
		switch {
		case a.Path.Less(b.Path):
			return -1
		case b.Path.Less(a.Path):
			return 1
		}
		return 0
	})
	return s
}

func encodeTLV(base Path, entries []Entry) ([]byte, error) {
	if base.IsRoot() {
		return nil, fmt.Errorf("%w: TLV cannot carry several objects; use SenML or LwM2M CBOR for composite operations", ErrUnsupportedFormat)
	}
	s := sortedEntries(entries)
	for i := 1; i < len(s); i++ {
		if s[i].Path == s[i-1].Path || s[i-1].Path.Contains(s[i].Path) {
			return nil, fmt.Errorf("lwm2m: tlv: %v given twice or both as a value and as a resource instance", s[i].Path)
		}
	}
	var out []byte
	var err error
	switch base.Len() {
	case 1:
		for i := 0; i < len(s); {
			j := i
			for j < len(s) && s[j].Path.Instance() == s[i].Path.Instance() {
				j++
			}
			var inner []byte
			if inner, err = tlvResources(s[i:j]); err != nil {
				return nil, err
			}
			if out, err = appendTLV(out, tlvObjectInstance, s[i].Path.Instance(), inner); err != nil {
				return nil, err
			}
			i = j
		}
		return out, nil
	case 2:
		return tlvResources(s)
	case 3:
		return tlvResources(s)
	}
	// A single resource instance (LwM2M 1.1 Read of /o/i/r/ri).
	for _, e := range s {
		var v []byte
		if v, err = appendTLVValue(nil, e.Value); err != nil {
			return nil, err
		}
		if out, err = appendTLV(out, tlvResourceInstance, e.Path.ResourceInstance(), v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tlvResources encodes sorted entries of one object instance as resource
// and multiple-resource TLVs.
func tlvResources(s []Entry) ([]byte, error) {
	var out []byte
	var err error
	for i := 0; i < len(s); {
		p := s[i].Path
		if p.IsResource() {
			var v []byte
			if v, err = appendTLVValue(nil, s[i].Value); err != nil {
				return nil, err
			}
			if out, err = appendTLV(out, tlvResource, p.Resource(), v); err != nil {
				return nil, err
			}
			i++
			continue
		}
		j := i
		var inner []byte
		for j < len(s) && s[j].Path.IsResourceInstance() && s[j].Path.Resource() == p.Resource() && s[j].Path.Instance() == p.Instance() {
			var v []byte
			if v, err = appendTLVValue(nil, s[j].Value); err != nil {
				return nil, err
			}
			if inner, err = appendTLV(inner, tlvResourceInstance, s[j].Path.ResourceInstance(), v); err != nil {
				return nil, err
			}
			j++
		}
		if out, err = appendTLV(out, tlvMultiple, p.Resource(), inner); err != nil {
			return nil, err
		}
		i = j
	}
	return out, nil
}
