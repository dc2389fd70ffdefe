package lwm2m

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// The LwM2M 1.0 JSON format (11543, LwM2M 1.0 Core 6.4.4): an object with a
// base name "bn", an optional base time "bt" and an array "e" of records
// with a name "n", a time "t" and one of "v" (number, time), "sv"
// (string; opaque as base64), "bv" (boolean) or "ov" (objlnk "3:0").
// LwM2M 1.1 replaced it with SenML JSON; 1.0 devices still send it.

type lwm2mJSONRec struct {
	N  *string  `json:"n,omitempty"`
	V  *jsonNum `json:"v,omitempty"`
	SV *string  `json:"sv,omitempty"`
	BV *bool    `json:"bv,omitempty"`
	OV *string  `json:"ov,omitempty"`
	T  *jsonNum `json:"t,omitempty"`
}

type lwm2mJSONDoc struct {
	BN *string        `json:"bn,omitempty"`
	BT *jsonNum       `json:"bt,omitempty"`
	E  []lwm2mJSONRec `json:"e"`
}

func decodeLwM2MJSON(base Path, data []byte, types TypeResolver) ([]TimedEntry, error) {
	const format = "lwm2m+json"
	var doc lwm2mJSONDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, jsonErr(format, data, err)
	}
	if off := int(dec.InputOffset()); len(bytes.TrimSpace(data[off:])) != 0 {
		return nil, decodeErr(format, off, "data after the JSON object")
	}
	// Without "bn" names are relative to the request path.
	bn := base.String()
	if !base.IsRoot() {
		bn += "/"
	}
	if doc.BN != nil {
		bn = *doc.BN
	}
	bt, err := floatOf(doc.BT)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: bt: %v", ErrDecode, format, err)
	}
	recs := make([]senmlRec, len(doc.E))
	for i, j := range doc.E {
		r := &recs[i]
		if i == 0 {
			r.bn, r.bt = &bn, bt
		}
		r.n = j.N
		if r.t, err = floatOf(j.T); err != nil {
			return nil, fmt.Errorf("%w: %s: record %d: t: %v", ErrDecode, format, i, err)
		}
		var vals []Value
		if j.V != nil {
			v, err := numberOf(*j.V)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: record %d: v: %v", ErrDecode, format, i, err)
			}
			vals = append(vals, v)
		}
		if j.SV != nil {
			vals = append(vals, String(*j.SV))
		}
		if j.BV != nil {
			vals = append(vals, Boolean(*j.BV))
		}
		if j.OV != nil {
			l, err := ParseObjLnk(*j.OV)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: record %d: ov: %v", ErrDecode, format, i, err)
			}
			vals = append(vals, ObjLnkValue(l))
		}
		if len(vals) != 1 {
			return nil, fmt.Errorf("%w: %s: record %d has %d values, want one", ErrDecode, format, i, len(vals))
		}
		r.val = &vals[0]
	}
	return resolveSenML(format, base, recs, types)
}

func encodeLwM2MJSON(base Path, entries []Entry) ([]byte, error) {
	var doc lwm2mJSONDoc
	bn := base.String()
	single := len(entries) == 1 && entries[0].Path == base
	if !base.IsRoot() && !single {
		bn += "/"
	}
	doc.BN = &bn
	doc.E = make([]lwm2mJSONRec, len(entries))
	for i, e := range entries {
		r := &doc.E[i]
		if !single {
			n := strings.TrimPrefix(e.Path.String(), bn)
			r.N = &n
		}
		v := e.Value
		switch v.typ {
		case TypeString, TypeCoreLnk:
			r.SV = &v.s
		case TypeOpaque:
			// LwM2M 1.0 Core 6.4.4: opaque is a base64 string in "sv".
			s := base64.StdEncoding.EncodeToString(v.b)
			r.SV = &s
		case TypeInteger, TypeUnsignedInteger, TypeFloat, TypeTime:
			n, err := jsonNumber(v)
			if err != nil {
				return nil, fmt.Errorf("%v: %w", e.Path, err)
			}
			r.V = n
		case TypeBoolean:
			b := v.i != 0
			r.BV = &b
		case TypeObjLnk:
			s := v.l.String()
			r.OV = &s
		default:
			return nil, fmt.Errorf("lwm2m: lwm2m+json: %v has no value to encode", e.Path)
		}
	}
	return marshalJSON(doc)
}
