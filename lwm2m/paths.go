package lwm2m

import (
	"encoding/json"
	"fmt"
)

// Read-Composite and Observe-Composite requests carry a list of paths
// (LwM2M Core 6.3.2.1 / 7.4.4): SenML records with only a name, or an
// LwM2M CBOR map with null leaves.

// EncodePaths writes a request-path list in SenML JSON, SenML CBOR or
// LwM2M CBOR.
func EncodePaths(cf ContentFormat, paths []Path) ([]byte, error) {
	switch cf {
	case FormatSenMLJSON:
		recs := make([]senmlJSONRec, len(paths))
		for i, p := range paths {
			s := p.String()
			recs[i].N = &s
		}
		return json.Marshal(recs)
	case FormatSenMLCBOR:
		recs := make([]senmlCBORRec, len(paths))
		for i, p := range paths {
			s := p.String()
			recs[i].N = &s
		}
		return cborEnc.Marshal(recs)
	case FormatLwM2MCBOR:
		return lcPaths(paths)
	}
	return nil, fmt.Errorf("%w: %v carries no path list", ErrUnsupportedFormat, cf)
}

// DecodePaths reads a request-path list. SenML records must carry no value;
// base names apply as in any SenML pack.
func DecodePaths(cf ContentFormat, data []byte) ([]Path, error) {
	var recs []senmlRec
	var err error
	name := "senml+json"
	switch cf {
	case FormatSenMLJSON:
		recs, err = parseSenMLJSON(data)
	case FormatSenMLCBOR:
		name = "senml+cbor"
		recs, err = parseSenMLCBOR(data)
	case FormatLwM2MCBOR:
		d := &lcDecoder{data: data, withNull: true, seen: map[Path]bool{}}
		if err := d.top(); err != nil {
			return nil, err
		}
		if len(d.entries) > 0 {
			return nil, fmt.Errorf("%w: %s: path list holds a value at %v", ErrDecode, lcName, d.entries[0].Path)
		}
		return d.paths, nil
	default:
		return nil, fmt.Errorf("%w: %v carries no path list", ErrUnsupportedFormat, cf)
	}
	if err != nil {
		return nil, err
	}
	out := make([]Path, 0, len(recs))
	var bn string
	for i, r := range recs {
		if r.bn != nil {
			bn = *r.bn
		}
		if r.val != nil || r.bv != nil {
			return nil, fmt.Errorf("%w: %s: record %d of a path list has a value", ErrDecode, name, i)
		}
		n := bn
		if r.n != nil {
			n += *r.n
		}
		p, err := ParsePath(n)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: record %d: %w", ErrDecode, name, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}
