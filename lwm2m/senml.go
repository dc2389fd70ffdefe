package lwm2m

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// SenML (RFC 8428) as LwM2M uses it (LwM2M Core 7.4.4 JSON, 7.4.5 CBOR): a
// pack (array) of records, each naming a resource or resource instance by
// base name + name, with its value in "v" (numbers and time), "vs"
// (strings, corelnk), "vb" (booleans), "vd" (opaque) or "vlo" (objlnk,
// an LwM2M extension). Names of a pack may span objects, which makes SenML
// the format of composite operations (Read-Composite, Write-Composite, Send).

// TimedEntry is an entry with its SenML time, as Send and Notify with
// historical data carry (LwM2M Core 7.4.4.2).
type TimedEntry struct {
	Entry
	// Time is the record's resolved time, base time plus time, in seconds.
	// 0 means the record has none ("now"). Values below 2^28 are relative
	// to now (RFC 8428 4.5.3); At resolves them.
	Time float64
}

// senmlRelative is the bound below which SenML times are relative to now.
const senmlRelative = 1 << 28

// At returns the absolute time of the record given the time it was
// received; the zero time when the record has no time.
func (e TimedEntry) At(now time.Time) time.Time {
	switch {
	case e.Time == 0 || math.IsNaN(e.Time) || math.Abs(e.Time) > 1<<62:
		return time.Time{}
	case math.Abs(e.Time) < senmlRelative:
		return now.Add(time.Duration(e.Time * float64(time.Second)))
	}
	sec, frac := math.Modf(e.Time)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// senmlRec is one SenML record, whatever its serialization.
type senmlRec struct {
	bn  *string
	bt  *float64
	bv  *Value // numeric
	n   *string
	val *Value
	t   *float64
}

// DecodeTimed decodes SenML JSON, SenML CBOR or LwM2M JSON keeping each
// record's time. Decode drops the times.
func DecodeTimed(cf ContentFormat, base Path, data []byte, types TypeResolver) ([]TimedEntry, error) {
	var recs []senmlRec
	var err error
	name := "senml+json"
	switch cf {
	case FormatSenMLJSON:
		recs, err = parseSenMLJSON(data)
	case FormatSenMLCBOR:
		name = "senml+cbor"
		recs, err = parseSenMLCBOR(data)
	case FormatLwM2MJSON:
		return decodeLwM2MJSON(base, data, types)
	default:
		return nil, fmt.Errorf("%w: %v carries no times", ErrUnsupportedFormat, cf)
	}
	if err != nil {
		return nil, err
	}
	return resolveSenML(name, base, recs, types)
}

// resolveSenML applies base name, base time and base value (RFC 8428 4.5)
// and the model's types.
func resolveSenML(format string, base Path, recs []senmlRec, types TypeResolver) ([]TimedEntry, error) {
	out := make([]TimedEntry, 0, len(recs))
	var bn string
	var bt float64
	var bv *Value
	for i, r := range recs {
		if r.bn != nil {
			bn = *r.bn
		}
		if r.bt != nil {
			bt = *r.bt
		}
		if r.bv != nil {
			bv = r.bv
		}
		name := bn
		if r.n != nil {
			name += *r.n
		}
		p, err := ParsePath(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: record %d: name %q: %w", ErrDecode, format, i, name, err)
		}
		if p.Len() < 3 || !base.Contains(p) {
			return nil, fmt.Errorf("%w: %s: record %d: %v is not a resource below the request path %v", ErrDecode, format, i, p, base)
		}
		if r.val == nil && bv == nil {
			return nil, fmt.Errorf("%w: %s: record %d (%v) has no value", ErrDecode, format, i, p)
		}
		var v Value
		switch {
		case r.val == nil:
			v = *bv
		case bv != nil && isNumber(r.val.typ):
			v = addNumbers(*bv, *r.val)
		default:
			v = *r.val
		}
		if t, ok := resourceType(types, p); ok {
			if v, err = convertSenML(v, t); err != nil {
				return nil, fmt.Errorf("%s: record %d (%v): %w", format, i, p, err)
			}
		}
		te := TimedEntry{Entry: Entry{Path: p, Value: v}, Time: bt}
		if r.t != nil {
			te.Time += *r.t
		}
		out = append(out, te)
	}
	return out, nil
}

// convertSenML types a SenML value; opaque may also come as a base64
// string from devices that put it in "vs".
func convertSenML(v Value, t Type) (Value, error) {
	if t == TypeOpaque && v.typ == TypeString {
		b, err := decodeBase64(v.s)
		if err != nil {
			return Value{}, fmt.Errorf("%w: opaque value is not base64: %v", ErrConvert, err)
		}
		return Opaque(b), nil
	}
	return convert(v, t)
}

func isNumber(t Type) bool {
	return t == TypeInteger || t == TypeUnsignedInteger || t == TypeFloat || t == TypeTime
}

// addNumbers adds a base value to a value (RFC 8428 4.5.3), exactly when
// both are integers.
func addNumbers(a, b Value) Value {
	if a.typ == TypeInteger && b.typ == TypeInteger {
		s := a.i + b.i
		if (s > a.i) == (b.i > 0) {
			return Integer(s)
		}
	}
	return Float(a.Float() + b.Float())
}

// decodeBase64 accepts base64url (RFC 8428 4.3) and, leniently, standard
// base64, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// jsonNum is a JSON number kept as written, so integers beyond 2^53 keep
// their precision; unlike json.Number it refuses a quoted string.
type jsonNum string

// UnmarshalJSON implements json.Unmarshaler.
func (n *jsonNum) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return fmt.Errorf("%s is not a number", b)
	}
	*n = jsonNum(b)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (n jsonNum) MarshalJSON() ([]byte, error) { return []byte(n), nil }

// numberOf reads a JSON number as the narrowest value that holds it.
func numberOf(n jsonNum) (Value, error) {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return Integer(i), nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return Unsigned(u), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return Value{}, fmt.Errorf("number %q out of range", s)
	}
	return Float(f), nil
}

// senmlJSONRec is a SenML JSON record (RFC 8428 Table 4 labels).
type senmlJSONRec struct {
	BN  *string  `json:"bn,omitempty"`
	BT  *jsonNum `json:"bt,omitempty"`
	BV  *jsonNum `json:"bv,omitempty"`
	N   *string  `json:"n,omitempty"`
	V   *jsonNum `json:"v,omitempty"`
	VS  *string  `json:"vs,omitempty"`
	VB  *bool    `json:"vb,omitempty"`
	VD  *string  `json:"vd,omitempty"`
	VLO *string  `json:"vlo,omitempty"`
	T   *jsonNum `json:"t,omitempty"`
}

// jsonErr places an encoding/json error at its byte.
func jsonErr(format string, data []byte, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return decodeErr(format, len(data), "unexpected end of data")
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return decodeErr(format, int(se.Offset), "%v", se)
	case errors.As(err, &te):
		return decodeErr(format, int(te.Offset), "%v", te)
	}
	return fmt.Errorf("%w: %s: %v", ErrDecode, format, err)
}

func parseSenMLJSON(data []byte) ([]senmlRec, error) {
	var pack []senmlJSONRec
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&pack); err != nil {
		return nil, jsonErr("senml+json", data, err)
	}
	if off := int(dec.InputOffset()); len(bytes.TrimSpace(data[off:])) != 0 {
		return nil, decodeErr("senml+json", off, "data after the pack")
	}
	if bytes.Contains(data, []byte(`_"`)) {
		var maps []map[string]json.RawMessage
		if err := json.Unmarshal(data, &maps); err != nil {
			return nil, jsonErr("senml+json", data, err)
		}
		for i, m := range maps {
			for k := range m {
				if err := mustUnderstand("senml+json", i, k); err != nil {
					return nil, err
				}
			}
		}
	}
	recs := make([]senmlRec, len(pack))
	for i, j := range pack {
		r := &recs[i]
		r.bn, r.n = j.BN, j.N
		var err error
		if r.bt, err = floatOf(j.BT); err != nil {
			return nil, fmt.Errorf("%w: senml+json: record %d: bt: %v", ErrDecode, i, err)
		}
		if r.t, err = floatOf(j.T); err != nil {
			return nil, fmt.Errorf("%w: senml+json: record %d: t: %v", ErrDecode, i, err)
		}
		if j.BV != nil {
			v, err := numberOf(*j.BV)
			if err != nil {
				return nil, fmt.Errorf("%w: senml+json: record %d: bv: %v", ErrDecode, i, err)
			}
			r.bv = &v
		}
		var vals []Value
		if j.V != nil {
			v, err := numberOf(*j.V)
			if err != nil {
				return nil, fmt.Errorf("%w: senml+json: record %d: v: %v", ErrDecode, i, err)
			}
			vals = append(vals, v)
		}
		if j.VS != nil {
			vals = append(vals, String(*j.VS))
		}
		if j.VB != nil {
			vals = append(vals, Boolean(*j.VB))
		}
		if j.VD != nil {
			b, err := decodeBase64(*j.VD)
			if err != nil {
				return nil, fmt.Errorf("%w: senml+json: record %d: vd is not base64url: %v", ErrDecode, i, err)
			}
			vals = append(vals, Opaque(b))
		}
		if j.VLO != nil {
			l, err := ParseObjLnk(*j.VLO)
			if err != nil {
				return nil, fmt.Errorf("%w: senml+json: record %d: vlo: %v", ErrDecode, i, err)
			}
			vals = append(vals, ObjLnkValue(l))
		}
		if len(vals) > 1 {
			return nil, fmt.Errorf("%w: senml+json: record %d has %d values, want one", ErrDecode, i, len(vals))
		}
		if len(vals) == 1 {
			r.val = &vals[0]
		}
	}
	return recs, nil
}

// mustUnderstand rejects a field whose name ends with "_": RFC 8428 4.4
// makes such extensions mandatory to understand, and we know none.
func mustUnderstand(format string, rec int, key string) error {
	if strings.HasSuffix(key, "_") {
		return fmt.Errorf("%w: %s: record %d: field %q must be understood (RFC 8428 4.4) and is not supported", ErrDecode, format, rec, key)
	}
	return nil
}

func floatOf(n *jsonNum) (*float64, error) {
	if n == nil {
		return nil, nil
	}
	f, err := strconv.ParseFloat(string(*n), 64)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// senmlCBORRec is a SenML CBOR record: RFC 8428 Table 6 integer labels,
// and LwM2M's text label "vlo" for objlnk (LwM2M Core 7.4.5).
type senmlCBORRec struct {
	BN  *string `cbor:"-2,keyasint,omitempty"`
	BT  any     `cbor:"-3,keyasint,omitempty"`
	BV  any     `cbor:"-5,keyasint,omitempty"`
	N   *string `cbor:"0,keyasint,omitempty"`
	V   any     `cbor:"2,keyasint,omitempty"`
	VS  *string `cbor:"3,keyasint,omitempty"`
	VB  *bool   `cbor:"4,keyasint,omitempty"`
	T   any     `cbor:"6,keyasint,omitempty"`
	VD  *[]byte `cbor:"8,keyasint,omitempty"`
	VLO *string `cbor:"vlo,omitempty"`
}

func cborNumber(x any) (Value, error) {
	switch x.(type) {
	case uint64, int64, float64:
		return valueOfCBOR(x)
	}
	return Value{}, fmt.Errorf("%T is not a number", x)
}

// cborTime reads a SenML CBOR time, an integer or a float.
func cborTime(x any) (*float64, error) {
	if x == nil {
		return nil, nil
	}
	v, err := cborNumber(x)
	if err != nil {
		return nil, err
	}
	f := v.Float()
	return &f, nil
}

func parseSenMLCBOR(data []byte) ([]senmlRec, error) {
	var pack []senmlCBORRec
	rest, err := cborDec.UnmarshalFirst(data, &pack)
	if err != nil {
		return nil, fmt.Errorf("%w: senml+cbor: %v", ErrDecode, err)
	}
	if len(rest) != 0 {
		return nil, decodeErr("senml+cbor", len(data)-len(rest), "%d bytes after the pack", len(rest))
	}
	if bytes.IndexByte(data, '_') >= 0 {
		var maps []map[any]cbor.RawMessage
		if _, err := cborDec.UnmarshalFirst(data, &maps); err != nil {
			return nil, fmt.Errorf("%w: senml+cbor: %v", ErrDecode, err)
		}
		for i, m := range maps {
			for k := range m {
				if ks, ok := k.(string); ok {
					if err := mustUnderstand("senml+cbor", i, ks); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	recs := make([]senmlRec, len(pack))
	for i, c := range pack {
		r := &recs[i]
		r.bn, r.n = c.BN, c.N
		var err error
		if r.bt, err = cborTime(c.BT); err != nil {
			return nil, fmt.Errorf("%w: senml+cbor: record %d: bt: %v", ErrDecode, i, err)
		}
		if r.t, err = cborTime(c.T); err != nil {
			return nil, fmt.Errorf("%w: senml+cbor: record %d: t: %v", ErrDecode, i, err)
		}
		if c.BV != nil {
			v, err := cborNumber(c.BV)
			if err != nil {
				return nil, fmt.Errorf("%w: senml+cbor: record %d: bv: %v", ErrDecode, i, err)
			}
			r.bv = &v
		}
		var vals []Value
		if c.V != nil {
			v, err := cborNumber(c.V)
			if err != nil {
				return nil, fmt.Errorf("%w: senml+cbor: record %d: v: %v", ErrDecode, i, err)
			}
			vals = append(vals, v)
		}
		if c.VS != nil {
			vals = append(vals, String(*c.VS))
		}
		if c.VB != nil {
			vals = append(vals, Boolean(*c.VB))
		}
		if c.VD != nil {
			vals = append(vals, Opaque(*c.VD))
		}
		if c.VLO != nil {
			l, err := ParseObjLnk(*c.VLO)
			if err != nil {
				return nil, fmt.Errorf("%w: senml+cbor: record %d: vlo: %v", ErrDecode, i, err)
			}
			vals = append(vals, ObjLnkValue(l))
		}
		if len(vals) > 1 {
			return nil, fmt.Errorf("%w: senml+cbor: record %d has %d values, want one", ErrDecode, i, len(vals))
		}
		if len(vals) == 1 {
			r.val = &vals[0]
		}
	}
	return recs, nil
}

// senmlNames gives each record its base name (empty: none) and name. A
// pack for a request path has one base name, on the first record
// (RFC 8428 4.5.1); a composite pack (base /) sets the base name to the
// object instance whenever it changes, as LwM2M Core 7.4.4's Read-Composite
// examples do, so names stay short.
func senmlNames(base Path, entries []TimedEntry) (bns, names []string) {
	bns = make([]string, len(entries))
	names = make([]string, len(entries))
	if len(entries) == 0 {
		return bns, names
	}
	if base.IsRoot() {
		cur := ""
		for i, e := range entries {
			ip := InstancePath(e.Path.Object(), e.Path.Instance()).String() + "/"
			if ip != cur {
				bns[i], cur = ip, ip
			}
			names[i] = strings.TrimPrefix(e.Path.String(), ip)
		}
		return bns, names
	}
	if len(entries) == 1 && entries[0].Path == base {
		bns[0] = base.String()
		return bns, names
	}
	bn := base.String() + "/"
	for _, e := range entries {
		if e.Path == base {
			// Records of the request path itself (a resource's history):
			// the base name is the path, and below it names start with "/".
			bn = base.String()
			break
		}
	}
	bns[0] = bn
	for i, e := range entries {
		names[i] = strings.TrimPrefix(e.Path.String(), bn)
	}
	return bns, names
}

// EncodeTimed encodes entries with their times in SenML JSON or SenML CBOR
// (Send and Notify with historical data). Encode is EncodeTimed with no
// times.
func EncodeTimed(cf ContentFormat, base Path, entries []TimedEntry) ([]byte, error) {
	for _, e := range entries {
		if !base.Contains(e.Path) || e.Path.Len() < 3 {
			return nil, fmt.Errorf("lwm2m: encode %v: entry %v is not a resource below %v", cf, e.Path, base)
		}
	}
	switch cf {
	case FormatSenMLJSON:
		return senmlJSON(base, entries)
	case FormatSenMLCBOR:
		return senmlCBOR(base, entries)
	}
	return nil, fmt.Errorf("%w: %v carries no times", ErrUnsupportedFormat, cf)
}

func untimed(entries []Entry) []TimedEntry {
	te := make([]TimedEntry, len(entries))
	for i, e := range entries {
		te[i].Entry = e
	}
	return te
}

func encodeSenMLJSON(base Path, entries []Entry) ([]byte, error) {
	return senmlJSON(base, untimed(entries))
}

func encodeSenMLCBOR(base Path, entries []Entry) ([]byte, error) {
	return senmlCBOR(base, untimed(entries))
}

func jsonNumber(v Value) (*jsonNum, error) {
	var s string
	switch v.typ {
	case TypeInteger, TypeTime:
		s = strconv.FormatInt(v.i, 10)
	case TypeUnsignedInteger:
		s = strconv.FormatUint(v.u, 10)
	case TypeFloat:
		if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
			return nil, fmt.Errorf("lwm2m: json: %v cannot be written in JSON", v.f)
		}
		s = strconv.FormatFloat(v.f, 'g', -1, 64)
		// A float with an integral value keeps a fraction so that a
		// decoder without the model (numberOf) reads it back as a float.
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
	}
	n := jsonNum(s)
	return &n, nil
}

func senmlJSON(base Path, entries []TimedEntry) ([]byte, error) {
	bns, names := senmlNames(base, entries)
	pack := make([]senmlJSONRec, len(entries))
	for i, e := range entries {
		r := &pack[i]
		if bns[i] != "" {
			r.BN = &bns[i]
		}
		if names[i] != "" {
			r.N = &names[i]
		}
		if e.Time != 0 {
			t := jsonNum(strconv.FormatFloat(e.Time, 'g', -1, 64))
			r.T = &t
		}
		v := e.Value
		switch v.typ {
		case TypeString, TypeCoreLnk:
			r.VS = &v.s
		case TypeInteger, TypeUnsignedInteger, TypeFloat, TypeTime:
			n, err := jsonNumber(v)
			if err != nil {
				return nil, fmt.Errorf("%v: %w", e.Path, err)
			}
			r.V = n
		case TypeBoolean:
			b := v.i != 0
			r.VB = &b
		case TypeOpaque:
			s := base64.RawURLEncoding.EncodeToString(v.b)
			r.VD = &s
		case TypeObjLnk:
			s := v.l.String()
			r.VLO = &s
		default:
			return nil, fmt.Errorf("lwm2m: senml: %v has no value to encode", e.Path)
		}
	}
	return marshalJSON(pack)
}

// marshalJSON is json.Marshal without HTML escaping: a corelnk value
// "</3/0>" stays as written instead of "\u003c/3/0\u003e", which small
// device parsers may not undo.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func senmlCBOR(base Path, entries []TimedEntry) ([]byte, error) {
	bns, names := senmlNames(base, entries)
	pack := make([]senmlCBORRec, len(entries))
	for i, e := range entries {
		r := &pack[i]
		if bns[i] != "" {
			r.BN = &bns[i]
		}
		if names[i] != "" {
			r.N = &names[i]
		}
		if e.Time != 0 {
			// Whole seconds as an integer: 5 bytes instead of a 9-byte
			// double for a Unix time.
			if e.Time == math.Trunc(e.Time) && math.Abs(e.Time) < 1<<53 {
				r.T = int64(e.Time)
			} else {
				r.T = e.Time
			}
		}
		v := e.Value
		switch v.typ {
		case TypeString, TypeCoreLnk:
			r.VS = &v.s
		case TypeInteger, TypeTime:
			r.V = v.i
		case TypeUnsignedInteger:
			r.V = v.u
		case TypeFloat:
			r.V = v.f
		case TypeBoolean:
			b := v.i != 0
			r.VB = &b
		case TypeOpaque:
			b := v.b
			if b == nil {
				b = []byte{}
			}
			r.VD = &b
		case TypeObjLnk:
			s := v.l.String()
			r.VLO = &s
		default:
			return nil, fmt.Errorf("lwm2m: senml: %v has no value to encode", e.Path)
		}
	}
	return cborEnc.Marshal(pack)
}
