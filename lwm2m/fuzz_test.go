package lwm2m

import (
	"errors"
	"slices"
	"testing"
)

// Every decoder gets a fuzz target seeded with valid encodings. Decoders
// must return an error, never panic, on any input; where the format keeps
// all information, decode → encode → decode must give the same entries.

// seedEncodings adds the encodings of the Device object and of the typed
// samples in format cf to f.
func seedEncodings(f *testing.F, cf ContentFormat) {
	es, _ := typedSamples()
	for _, c := range []struct {
		base Path
		es   []Entry
	}{{InstancePath(3, 0), deviceEntries()}, {ObjectPath(9999), es}, {ResourcePath(3, 0, 6), deviceEntries()[4:6]}} {
		b, err := Encode(cf, c.base, c.es)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fuzzTypes types the Device object and the samples object, so the fuzzer
// reaches the typed value decoders.
func fuzzTypes() TypeMap {
	_, types := typedSamples()
	for p, t := range deviceTypes {
		types[p] = t
	}
	return types
}

// checkRoundTrip decodes data, re-encodes the entries and decodes again.
func checkRoundTrip(t *testing.T, cf ContentFormat, base Path, data []byte, types TypeResolver) {
	es, err := Decode(cf, base, data, types)
	if err != nil {
		if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrConvert) && !errors.Is(err, ErrUnsupportedFormat) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		return
	}
	enc, err := Encode(cf, base, es)
	if err != nil {
		return // e.g. a path given twice: decodable, not encodable
	}
	again, err := Decode(cf, base, enc, types)
	if err != nil {
		t.Fatalf("re-decode of %x: %v", enc, err)
	}
	if !entriesEqual(sortedEntries(again), sortedEntries(es)) {
		t.Fatalf("round trip changed entries:\n first %v\nsecond %v", es, again)
	}
}

func FuzzTLV(f *testing.F) {
	seedEncodings(f, FormatTLV)
	f.Add([]byte{0x08, 0x00, 0x03, 0xc1, 0x00, 0x01})
	types := fuzzTypes()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, base := range []Path{ObjectPath(3), InstancePath(3, 0), ResourcePath(3, 0, 6), ObjectPath(9999)} {
			checkRoundTrip(t, FormatTLV, base, data, types)
			checkRoundTrip(t, FormatTLV, base, data, nil)
		}
	})
}

func FuzzSenMLJSON(f *testing.F) {
	seedEncodings(f, FormatSenMLJSON)
	f.Add([]byte(`[{"bn":"/3303/0/5700","bt":25462634,"bv":1,"v":22.4,"t":-5},{"t":-30,"v":22.9}]`))
	types := fuzzTypes()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, FormatSenMLJSON, Root, data, types)
		checkRoundTrip(t, FormatSenMLJSON, InstancePath(3, 0), data, nil)
		_, _ = DecodePaths(FormatSenMLJSON, data)
	})
}

func FuzzSenMLCBOR(f *testing.F) {
	seedEncodings(f, FormatSenMLCBOR)
	types := fuzzTypes()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, FormatSenMLCBOR, Root, data, types)
		checkRoundTrip(t, FormatSenMLCBOR, InstancePath(3, 0), data, nil)
		_, _ = DecodePaths(FormatSenMLCBOR, data)
	})
}

func FuzzLwM2MJSON(f *testing.F) {
	seedEncodings(f, FormatLwM2MJSON)
	f.Add([]byte(specLwM2MJSONDevice))
	types := fuzzTypes()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, FormatLwM2MJSON, InstancePath(3, 0), data, types)
		checkRoundTrip(t, FormatLwM2MJSON, Root, data, nil)
	})
}

func FuzzLwM2MCBOR(f *testing.F) {
	seedEncodings(f, FormatLwM2MCBOR)
	if b, err := EncodePaths(FormatLwM2MCBOR, []Path{ResourcePath(3, 0, 0), ObjectPath(5)}); err == nil {
		f.Add(b)
	}
	types := fuzzTypes()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, FormatLwM2MCBOR, Root, data, types)
		checkRoundTrip(t, FormatLwM2MCBOR, InstancePath(3, 0), data, nil)
		_, _ = DecodePaths(FormatLwM2MCBOR, data)
	})
}

func FuzzCBOR(f *testing.F) {
	es, types := typedSamples()
	for _, e := range es {
		b, err := Encode(FormatCBOR, e.Path, []Entry{e})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(e.Path.Resource()), b)
	}
	f.Fuzz(func(t *testing.T, r uint16, data []byte) {
		p := ResourcePath(9999, 0, r%uint16(len(es)+1))
		checkRoundTrip(t, FormatCBOR, p, data, types)
		checkRoundTrip(t, FormatCBOR, p, data, nil)
	})
}

func FuzzText(f *testing.F) {
	es, types := typedSamples()
	for _, e := range es {
		b, err := Encode(FormatText, e.Path, []Entry{e})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint16(e.Path.Resource()), b)
	}
	f.Fuzz(func(t *testing.T, r uint16, data []byte) {
		p := ResourcePath(9999, 0, r%uint16(len(es)+1))
		checkRoundTrip(t, FormatText, p, data, types)
		checkRoundTrip(t, FormatText, p, data, nil)
	})
}

func FuzzOpaque(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 0xff})
	p := ResourcePath(5, 0, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := Decode(FormatOpaque, p, data, nil)
		if err != nil || len(es) != 1 || string(es[0].Value.Bytes()) != string(data) {
			t.Fatalf("opaque decode changed the bytes: %v %v", es, err)
		}
		checkRoundTrip(t, FormatOpaque, p, data, nil)
	})
}

func FuzzLinkFormat(f *testing.F) {
	for _, s := range []string{
		`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1,</5>`,
		`</lwm2m>;rt="oma.lwm2m";ct="60 110 112 11542",</lwm2m/1/101>,</lwm2m/3/0>`,
		`</3>;ver=1.1;pmin=10,</3/0/6>;dim=8,</3/0/7>;gt=50;lt=42.2;st=0.5`,
		"</a>;title=\"x, y; \\\"z\\\"\";obs",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		links, err := ParseLinks(data)
		if err != nil {
			if !errors.Is(err, ErrLinkFormat) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		again, err := ParseLinks(FormatLinks(links))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", FormatLinks(links), err)
		}
		if !slices.EqualFunc(links, again, func(a, b WebLink) bool {
			return a.Target == b.Target && slices.Equal(a.Attrs, b.Attrs)
		}) {
			t.Fatalf("round trip changed links:\n%+v\n%+v", links, again)
		}
		if nodes, err := ParseDiscover(data); err == nil {
			again, err := ParseDiscover(FormatDiscover(nodes))
			if err != nil || len(again) != len(nodes) {
				t.Fatalf("re-parse of discover %q: %v", FormatDiscover(nodes), err)
			}
		}
		if r, err := ParseRegistrationPayload(data); err == nil {
			if _, err := ParseRegistrationPayload(FormatRegistrationPayload(r)); err != nil {
				t.Fatalf("re-parse of registration %q: %v", FormatRegistrationPayload(r), err)
			}
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/", "/3", "/3/0", "/3/0/1", "/3/0/6/1", "3/0/", "/65534/65534/65534/65534"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		q, err := ParsePath(p.String())
		if err != nil || q != p {
			t.Fatalf("%q -> %v -> %v %v", s, p, q, err)
		}
	})
}
