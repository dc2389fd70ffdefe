package lwm2m

import (
	"errors"
	"fmt"
)

// ErrUnsupportedFormat is returned by Encode and Decode for a content format
// this package has no codec for (or that cannot carry the given data, such
// as text/plain with several values). Servers answer it with 4.15 or 4.06.
var ErrUnsupportedFormat = errors.New("lwm2m: unsupported content format")

// ErrDecode marks every decoding failure: bad input bytes, not a bug. The
// wrapped message says which byte and what was expected.
var ErrDecode = errors.New("lwm2m: decode")

// TypeResolver tells decoders the data type of a resource, so formats that
// carry no types on the wire (TLV, text/plain, opaque) or carry only "a
// number" (SenML, CBOR) return correctly typed values. The objects registry
// implements it. Decoders always ask with a resource path /o/i/r, also for
// values of resource instances. ok is false for an unknown resource; the
// decoder then keeps the type the wire suggests (opaque for TLV).
type TypeResolver interface {
	ResourceType(p Path) (Type, bool)
}

// TypeMap is a TypeResolver keyed by resource path, handy for tests and for
// callers that know a few resources.
type TypeMap map[Path]Type

// ResourceType implements TypeResolver.
func (m TypeMap) ResourceType(p Path) (Type, bool) {
	t, ok := m[p]
	return t, ok
}

// resourceType asks r about the resource p belongs to.
func resourceType(r TypeResolver, p Path) (Type, bool) {
	if r == nil || p.Len() < 3 {
		return TypeNone, false
	}
	return r.ResourceType(ResourcePath(p.Object(), p.Instance(), p.Resource()))
}

// decodeErr builds an error that says where decoding failed.
func decodeErr(format string, off int, msg string, args ...any) error {
	return fmt.Errorf("%w: %s: byte %d: %s", ErrDecode, format, off, fmt.Sprintf(msg, args...))
}

// Encode writes entries in content format cf. base is the path of the
// request (the node read, or Root for composite operations); every entry
// must lie at or below base. Single-value formats (text, opaque, CBOR)
// take exactly one entry at a resource or resource-instance path.
func Encode(cf ContentFormat, base Path, entries []Entry) ([]byte, error) {
	for _, e := range entries {
		if !base.Contains(e.Path) || e.Path.Len() < 3 {
			return nil, fmt.Errorf("lwm2m: encode %v: entry %v is not a resource below %v", cf, e.Path, base)
		}
	}
	switch cf {
	case FormatText:
		return encodeText(entries)
	case FormatOpaque:
		return encodeOpaque(entries)
	case FormatCBOR:
		return encodeCBORValue(entries)
	case FormatTLV:
		return encodeTLV(base, entries)
	case FormatSenMLJSON:
		return encodeSenMLJSON(base, entries)
	case FormatSenMLCBOR:
		return encodeSenMLCBOR(base, entries)
	case FormatLwM2MJSON:
		return encodeLwM2MJSON(base, entries)
	case FormatLwM2MCBOR:
		return encodeLwM2MCBOR(base, entries)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedFormat, cf)
}

// Decode reads data in content format cf sent for the request path base
// (the node written or read; Root for composite operations). types may be
// nil. The entries come back in wire order with absolute paths. Errors wrap
// ErrDecode (bad bytes), ErrConvert (a value that does not fit the
// resource's type) or ErrUnsupportedFormat.
func Decode(cf ContentFormat, base Path, data []byte, types TypeResolver) ([]Entry, error) {
	switch cf {
	case FormatText:
		return decodeText(base, data, types)
	case FormatOpaque:
		return decodeOpaque(base, data)
	case FormatCBOR:
		return decodeCBORValue(base, data, types)
	case FormatTLV:
		return decodeTLV(base, data, types)
	case FormatSenMLJSON, FormatSenMLCBOR, FormatLwM2MJSON:
		te, err := DecodeTimed(cf, base, data, types)
		if err != nil {
			return nil, err
		}
		out := make([]Entry, len(te))
		for i := range te {
			out[i] = te[i].Entry
		}
		return out, nil
	case FormatLwM2MCBOR:
		return decodeLwM2MCBOR(base, data, types)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedFormat, cf)
}

// singleValueBase checks the request path of a single-value format.
func singleValueBase(name string, base Path) error {
	if base.Len() < 3 {
		return fmt.Errorf("%w: %s carries one resource value, but the request path %v is not a resource", ErrUnsupportedFormat, name, base)
	}
	return nil
}

// single returns the one entry of a single-value format.
func single(name string, entries []Entry) (Entry, error) {
	if len(entries) != 1 {
		return Entry{}, fmt.Errorf("%w: %s carries exactly one value, got %d", ErrUnsupportedFormat, name, len(entries))
	}
	return entries[0], nil
}
