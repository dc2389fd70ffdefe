package lwm2m

import (
	"bytes"
	"strings"
	"testing"
)

// LwM2M Core 7.4.5 leaves the CBOR form of a time open: we write tag 1
// around the seconds, and read tag 1, a bare integer (typed by the model),
// and tag 0 with an RFC 3339 string, which Zephyr's LwM2M client sends.
func TestCBOR_TimeForms(t *testing.T) {
	p := ResourcePath(3, 0, 13)
	want := TimeUnix(1367491215)
	enc, err := Encode(FormatCBOR, p, []Entry{{p, want}})
	if err != nil || !bytes.Equal(enc, unhex(t, "c1 1a 51 82 42 8f")) {
		t.Fatalf("encode: % x %v", enc, err)
	}
	forms := map[string][]byte{
		"tag 1":          enc,
		"bare integer":   unhex(t, "1a 51 82 42 8f"),
		"tag 0 (Zephyr)": append([]byte{0xc0, 0x78, 25}, "2013-05-02T10:40:15-00:00"...),
		"tag 1 of float": unhex(t, "c1 fb 41 d4 60 90 a3 c0 00 00"),
	}
	for name, b := range forms {
		got, err := Decode(FormatCBOR, p, b, deviceTypes)
		if err != nil || !got[0].Value.Equal(want) {
			t.Errorf("%s: %v %v", name, got, err)
		}
	}
}

func TestCBOR_Errors(t *testing.T) {
	p := ResourcePath(3, 0, 9)
	cases := []struct{ hex, want string }{
		{"18", "cbor"}, // truncated
		{"01 02", "byte 1: 1 bytes after the value"},
		{"f6", "null where a value was expected"},
		{"a1 01 02", "unsupported CBOR item"},
		{"f9 3e 00", "1.5 is not an integer"}, // half float 1.5
	}
	for _, c := range cases {
		_, err := Decode(FormatCBOR, p, unhex(t, c.hex), deviceTypes)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("% s: err = %v, want %q", c.hex, err, c.want)
		}
	}
}

// Devices write SenML CBOR times as integers: [{-3: 1700000000, 0: "/3/0/9", 2: 1, 6: -5}].
func TestSenMLCBOR_IntegerTimes(t *testing.T) {
	b := unhex(t, "81 a4 22 1a 65 53 f1 00 00 66 2f 33 2f 30 2f 39 02 01 06 24")
	got, err := DecodeTimed(FormatSenMLCBOR, Root, b, deviceTypes)
	if err != nil || len(got) != 1 || got[0].Time != 1699999995 || !got[0].Value.Equal(Integer(1)) {
		t.Fatalf("%+v %v", got, err)
	}
	enc, err := EncodeTimed(FormatSenMLCBOR, Root, got)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeTimed(FormatSenMLCBOR, Root, enc, deviceTypes)
	if err != nil || back[0].Time != 1699999995 {
		t.Fatalf("% x: %+v %v", enc, back, err)
	}
}
