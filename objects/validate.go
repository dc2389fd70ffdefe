package objects

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/fotastack/fota/lwm2m"
)

// Sentinel errors of validation; callers branch on them with errors.Is and
// answer with CoAPCode.
var (
	ErrUnknownObject   = errors.New("unknown object")
	ErrUnknownResource = errors.New("unknown resource")
	ErrNotWritable     = errors.New("not writable")
	ErrTypeMismatch    = errors.New("type mismatch")
	ErrOutOfRange      = errors.New("out of range")
	// ErrMultiplicity: a single resource addressed as /o/i/r/ri, or a
	// multiple-instance resource given one value at /o/i/r.
	ErrMultiplicity = errors.New("single/multiple instance mismatch")
)

// Op is the operation whose entries are checked: it decides which access
// rules apply.
type Op uint8

const (
	// OpWrite is a Write (replace or partial update) from an LwM2M Server:
	// every resource must have W access (LwM2M Core 6.3.3 Write).
	OpWrite Op = iota
	// OpCreate is a Create: its entries are the new instance's initial
	// values, which may include read-only resources such as the Access
	// Control object's Object ID (/2/x/0); executable resources take none.
	OpCreate
	// OpBootstrapWrite is a Bootstrap-Write: the Bootstrap-Server may set
	// any resource, including the Security object's, which have no
	// operations for other servers (LwM2M Core 6.1, object 0).
	OpBootstrapWrite
	// OpRead types and checks values a client reported (Read, Observe
	// notification, Send); no access rule applies.
	OpRead
)

var opNames = [...]string{"write", "create", "bootstrap-write", "read"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// EntryError is a validation failure at one path. It wraps one of the
// sentinel errors above.
type EntryError struct {
	Path lwm2m.Path
	Err  error
}

func (e *EntryError) Error() string { return "objects: " + e.Path.String() + ": " + e.Err.Error() }
func (e *EntryError) Unwrap() error { return e.Err }

func entryErr(p lwm2m.Path, format string, args ...any) error {
	return &EntryError{Path: p, Err: fmt.Errorf(format, args...)}
}

// Validate checks entries for operation op against the newest registered
// model of each object: the path names a known object and resource, the
// operation is allowed, the value has the resource's type or converts to
// it without loss (see Convert), single and multiple resources are
// addressed as such, and the value lies in the resource's range. It returns
// the first failure as an *EntryError; CoAPCode maps it to the response.
func (r *Registry) Validate(op Op, entries []lwm2m.Entry) error {
	for _, e := range entries {
		if e.Path.Len() < 3 {
			return &EntryError{Path: e.Path, Err: fmt.Errorf("%w: a value needs a /o/i/r or /o/i/r/ri path", lwm2m.ErrBadPath)}
		}
		obj, ok := r.Get(e.Path.Object())
		if !ok {
			return entryErr(e.Path, "%w %d", ErrUnknownObject, e.Path.Object())
		}
		if err := obj.validateEntry(op, e); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks entries against this object model (use it when the
// client announced the object version it implements). Entries of other
// objects fail with ErrUnknownObject.
func (o *ObjectModel) Validate(op Op, entries []lwm2m.Entry) error {
	for _, e := range entries {
		if e.Path.Len() < 3 {
			return &EntryError{Path: e.Path, Err: fmt.Errorf("%w: a value needs a /o/i/r or /o/i/r/ri path", lwm2m.ErrBadPath)}
		}
		if e.Path.Object() != o.ID {
			return entryErr(e.Path, "%w %d: model is object %d", ErrUnknownObject, e.Path.Object(), o.ID)
		}
		if err := o.validateEntry(op, e); err != nil {
			return err
		}
	}
	return nil
}

func (o *ObjectModel) validateEntry(op Op, e lwm2m.Entry) error {
	p := e.Path
	res, ok := o.Resource(p.Resource())
	if !ok {
		return entryErr(p, "%w %d in object %d (%s) v%s", ErrUnknownResource, p.Resource(), o.ID, o.Name, o.Version)
	}
	if res.Executable() {
		if op == OpRead {
			return entryErr(p, "%w: %q is executable and has no value", ErrTypeMismatch, res.Name)
		}
		return entryErr(p, "%w: %q is executable", ErrNotWritable, res.Name)
	}
	if op == OpWrite && !res.Writable() {
		if res.Operations == NoOps {
			return entryErr(p, "%w: %q is writable only by a Bootstrap-Server", ErrNotWritable, res.Name)
		}
		return entryErr(p, "%w: %q has operations %s", ErrNotWritable, res.Name, res.Operations)
	}
	if res.Multiple && p.IsResource() {
		return entryErr(p, "%w: %q is a multiple-instance resource; values go at /%d/%d/%d/<instance>",
			ErrMultiplicity, res.Name, p.Object(), p.Instance(), p.Resource())
	}
	if !res.Multiple && p.IsResourceInstance() {
		return entryErr(p, "%w: %q is a single-instance resource; it has no resource instances", ErrMultiplicity, res.Name)
	}
	v, err := Convert(e.Value, res.Type)
	if err != nil {
		return &EntryError{Path: p, Err: fmt.Errorf("%q: %w", res.Name, err)}
	}
	if err := res.Check(v); err != nil {
		return &EntryError{Path: p, Err: fmt.Errorf("%q: %w", res.Name, err)}
	}
	return nil
}

// Typed returns entries with each value converted to its resource's type,
// for values a decoder could not type without the model (a TLV value is
// opaque bytes until the model says what it holds). Entries whose path the
// registry does not know are returned unchanged: a client may implement
// objects the server has no model for. The input slice is not modified.
func (r *Registry) Typed(entries []lwm2m.Entry) ([]lwm2m.Entry, error) {
	out := make([]lwm2m.Entry, len(entries))
	for i, e := range entries {
		out[i] = e
		res, ok := r.Resource(e.Path)
		if !ok || res.Type == lwm2m.TypeNone || e.Value.Type() == res.Type {
			continue
		}
		v, err := Convert(e.Value, res.Type)
		if err != nil {
			return nil, &EntryError{Path: e.Path, Err: fmt.Errorf("%q: %w", res.Name, err)}
		}
		out[i].Value = v
	}
	return out, nil
}

// Convert returns v as type t when that loses nothing, and an error
// wrapping ErrTypeMismatch otherwise:
//   - opaque bytes are read by the TLV binary rules (LwM2M Core 7.4.3 and
//     Appendix C): integers and time as 1, 2, 4 or 8 byte big-endian two's
//     complement, unsigned integers as 1, 2, 4 or 8 byte big-endian, floats
//     as 4 or 8 byte IEEE 754, booleans as one byte 0 or 1, objlnk as two
//     16-bit big-endian IDs, strings and corelnk as UTF-8;
//   - strings are read as text/plain reads them (Core 7.4.1), and string
//     and corelnk convert to each other;
//   - numbers convert between integer, unsigned integer, float and time
//     when the value is exactly representable in the target; integers 0 and
//     1 become booleans.
func Convert(v lwm2m.Value, t lwm2m.Type) (lwm2m.Value, error) {
	from := v.Type()
	if from == t {
		return v, nil
	}
	fail := func(why string) (lwm2m.Value, error) {
		if why != "" {
			why = ": " + why
		}
		return lwm2m.Value{}, fmt.Errorf("%w: want %s, have %s%s", ErrTypeMismatch, t, from, why)
	}
	if t == lwm2m.TypeNone || from == lwm2m.TypeNone {
		return fail("")
	}
	switch from {
	case lwm2m.TypeOpaque:
		return fromTLVBytes(v.Bytes(), t, fail)
	case lwm2m.TypeString, lwm2m.TypeCoreLnk:
		if t == lwm2m.TypeString || t == lwm2m.TypeCoreLnk {
			return lwm2m.ParseText(t, v.Str())
		}
		w, err := lwm2m.ParseText(t, v.Str())
		if err != nil {
			return fail(err.Error())
		}
		return w, nil
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		i := v.Int()
		switch t {
		case lwm2m.TypeInteger:
			return lwm2m.Integer(i), nil
		case lwm2m.TypeTime:
			return lwm2m.TimeUnix(i), nil
		case lwm2m.TypeUnsignedInteger:
			if i < 0 {
				return fail(fmt.Sprintf("%d is negative", i))
			}
			return lwm2m.Unsigned(uint64(i)), nil
		case lwm2m.TypeFloat:
			f := float64(i)
			if f >= math.MaxInt64 || int64(f) != i {
				return fail(fmt.Sprintf("%d is not exact as a float", i))
			}
			return lwm2m.Float(f), nil
		case lwm2m.TypeBoolean:
			if from == lwm2m.TypeInteger && (i == 0 || i == 1) {
				return lwm2m.Boolean(i == 1), nil
			}
		}
	case lwm2m.TypeUnsignedInteger:
		u := v.Uint()
		switch t {
		case lwm2m.TypeInteger, lwm2m.TypeTime:
			if u > math.MaxInt64 {
				return fail(fmt.Sprintf("%d does not fit a signed 64-bit integer", u))
			}
			if t == lwm2m.TypeTime {
				return lwm2m.TimeUnix(int64(u)), nil
			}
			return lwm2m.Integer(int64(u)), nil
		case lwm2m.TypeFloat:
			f := float64(u)
			if f >= math.MaxUint64 || uint64(f) != u {
				return fail(fmt.Sprintf("%d is not exact as a float", u))
			}
			return lwm2m.Float(f), nil
		case lwm2m.TypeBoolean:
			if u == 0 || u == 1 {
				return lwm2m.Boolean(u == 1), nil
			}
		}
	case lwm2m.TypeFloat:
		f := v.Float()
		if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
			return fail(fmt.Sprintf("%g is not a whole number", f))
		}
		switch t {
		case lwm2m.TypeInteger, lwm2m.TypeTime:
			if f < math.MinInt64 || f >= math.MaxInt64 {
				return fail(fmt.Sprintf("%g does not fit a signed 64-bit integer", f))
			}
			if t == lwm2m.TypeTime {
				return lwm2m.TimeUnix(int64(f)), nil
			}
			return lwm2m.Integer(int64(f)), nil
		case lwm2m.TypeUnsignedInteger:
			if f < 0 || f >= math.MaxUint64 {
				return fail(fmt.Sprintf("%g does not fit an unsigned 64-bit integer", f))
			}
			return lwm2m.Unsigned(uint64(f)), nil
		}
	}
	return fail("")
}

// fromTLVBytes reads the value of a TLV resource as type t with the
// codec's own rules (lwm2m.TLVValue), and also insists that strings are
// UTF-8, which a write validated against the model must be.
func fromTLVBytes(b []byte, t lwm2m.Type, fail func(string) (lwm2m.Value, error)) (lwm2m.Value, error) {
	if (t == lwm2m.TypeString || t == lwm2m.TypeCoreLnk) && !utf8.Valid(b) {
		return fail("bytes are not UTF-8")
	}
	v, err := lwm2m.TLVValue(t, b)
	if err != nil {
		return fail(err.Error())
	}
	return v, nil
}

// CoAP response codes as they appear on the wire (class<<5 | detail); they
// equal go-coap's codes.Code values.
const (
	CodeBadRequest       uint8 = 4 << 5   // 4.00
	CodeNotFound         uint8 = 4<<5 | 4 // 4.04
	CodeMethodNotAllowed uint8 = 4<<5 | 5 // 4.05
	CodeInternalError    uint8 = 5 << 5   // 5.00
)

// CoAPCode returns the response code a client answers a failed operation
// with (LwM2M Core 6.3 and 6.1 response codes): 4.04 Not Found for an
// unknown object or resource, 4.05 Method Not Allowed for a resource the
// operation may not touch, 4.00 Bad Request for a bad path, type, range or
// multiplicity, 5.00 for anything else; 0 for nil.
func CoAPCode(err error) uint8 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUnknownObject), errors.Is(err, ErrUnknownResource):
		return CodeNotFound
	case errors.Is(err, ErrNotWritable):
		return CodeMethodNotAllowed
	case errors.Is(err, ErrTypeMismatch), errors.Is(err, ErrOutOfRange),
		errors.Is(err, ErrMultiplicity), errors.Is(err, lwm2m.ErrBadPath):
		return CodeBadRequest
	}
	return CodeInternalError
}
