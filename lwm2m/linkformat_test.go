package lwm2m

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// LwM2M 1.1 Core 6.2.1 / Appendix: registration payload announcing the
// root with rt="oma.lwm2m", the content format, object versions and an
// object without instances (built from the spec text).
func TestLinkFormat_SpecExample_Registration(t *testing.T) {
	payload := `</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1,</5>`
	r, err := ParseRegistrationPayload([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if r.RootPath != "/" || !slices.Equal(r.Formats, []ContentFormat{FormatLwM2MJSON}) {
		t.Fatalf("root %q formats %v", r.RootPath, r.Formats)
	}
	want := []ObjectInfo{{ID: 1, Instances: []uint16{0}}, {ID: 3, Version: "1.1", Instances: []uint16{0}}, {ID: 5}}
	if len(r.Objects) != len(want) {
		t.Fatalf("objects %+v", r.Objects)
	}
	for i := range want {
		g := r.Objects[i]
		if g.ID != want[i].ID || g.Version != want[i].Version || !slices.Equal(g.Instances, want[i].Instances) {
			t.Errorf("object %d: %+v, want %+v", i, g, want[i])
		}
	}
	if o, ok := r.Object(3); !ok || o.Version != "1.1" {
		t.Errorf("Object(3) = %+v %v", o, ok)
	}
	if got := string(FormatRegistrationPayload(r)); got != payload {
		t.Errorf("re-encoded %s", got)
	}
}

// LwM2M 1.1 Core 6.2.1: a client with an alternate path "/lwm2m" and
// several content formats in one quoted ct (RFC 7252 7.2.1).
func TestLinkFormat_SpecExample_AlternatePathAndFormats(t *testing.T) {
	payload := `</lwm2m>;rt="oma.lwm2m";ct="60 110 112 11542",</lwm2m/1/101>,</lwm2m/1/102>,</lwm2m/2/0>,</lwm2m/2/1>,</lwm2m/3/0>`
	r, err := ParseRegistrationPayload([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if r.RootPath != "/lwm2m" || !slices.Equal(r.Formats, []ContentFormat{60, 110, 112, 11542}) {
		t.Fatalf("root %q formats %v", r.RootPath, r.Formats)
	}
	if o, _ := r.Object(1); !slices.Equal(o.Instances, []uint16{101, 102}) {
		t.Fatalf("object 1 %+v", o)
	}
	if BestFormat(r.Formats, "1.1") != FormatSenMLCBOR {
		t.Errorf("best format %v", BestFormat(r.Formats, "1.1"))
	}
	if got := string(FormatRegistrationPayload(r)); got != `</lwm2m>;rt="oma.lwm2m";ct="60 110 112 11542",</lwm2m/1/101>,</lwm2m/1/102>,</lwm2m/2/0>,</lwm2m/2/1>,</lwm2m/3/0>` {
		t.Errorf("re-encoded %s", got)
	}
}

// LwM2M 1.1 Core 5.4.2 (Discover): the answer for /3 lists the object with
// its attributes and each resource, with dim for multiple resources
// (built from the spec text).
func TestLinkFormat_SpecExample_Discover(t *testing.T) {
	payload := `</3>;ver=1.1;pmin=10,</3/0>;pmax=60,</3/0/1>,</3/0/2>,</3/0/6>;dim=8,</3/0/7>;gt=50;lt=42.2;st=0.5,</3/0/13>;epmin=1;epmax=3600,</3/0/16>`
	links, err := ParseLinks([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 8 {
		t.Fatalf("%d links", len(links))
	}
	checks := []struct {
		i         int
		key, want string
	}{{0, "ver", "1.1"}, {0, "pmin", "10"}, {1, "pmax", "60"}, {4, "dim", "8"}, {5, "gt", "50"}, {5, "lt", "42.2"}, {5, "st", "0.5"}, {6, "epmin", "1"}, {6, "epmax", "3600"}}
	for _, c := range checks {
		if v, ok := links[c.i].Attr(c.key); !ok || v != c.want {
			t.Errorf("link %d %s = %q %v, want %q", c.i, c.key, v, ok, c.want)
		}
	}
	if p, err := links[4].Path("/"); err != nil || p != ResourcePath(3, 0, 6) {
		t.Errorf("path %v %v", p, err)
	}
	if got := string(FormatLinks(links)); got != payload {
		t.Errorf("re-encoded %s", got)
	}
}

func TestLinkFormat_QuotedCommasAndEscapes(t *testing.T) {
	payload := "</a>;title=\"x, y; \\\"z\\\"\";obs;if=\"sensor\" ,\n </b>"
	links, err := ParseLinks([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 || links[1].Target != "/b" {
		t.Fatalf("%+v", links)
	}
	if v, _ := links[0].Attr("title"); v != `x, y; "z"` {
		t.Errorf("title %q", v)
	}
	if v, ok := links[0].Attr("obs"); !ok || v != "" {
		t.Errorf("obs %q %v", v, ok)
	}
	again, err := ParseLinks(FormatLinks(links))
	if err != nil || len(again) != 2 {
		t.Fatal(err)
	}
	if v, _ := again[0].Attr("title"); v != `x, y; "z"` {
		t.Errorf("re-parsed title %q", v)
	}
}

func TestLinkFormat_Errors(t *testing.T) {
	cases := []struct{ in, want string }{
		{`</1/0>,/3/0`, "byte 7: expected '<'"},
		{`</1/0`, "byte 1: link target not closed"},
		{`</1/0>;rt="oma`, `byte 14: quoted value of "rt" not closed`},
		{`</1/0>;=3`, "byte 7: expected an attribute name"},
		{`</1/0>;ct=`, `byte 10: expected a value for "ct"`},
		{`</1/0> </3/0>`, "byte 7: expected ',' or end of links"},
	}
	for _, c := range cases {
		_, err := ParseLinks([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrLinkFormat) {
			t.Errorf("%s: err = %v, want %q", c.in, err, c.want)
		}
	}
	for _, in := range []string{`</1/x>`, `</>;rt="oma.lwm2m";ct=abc`, `</1/0/1/2/3>`, `</3/0/1>`} {
		if _, err := ParseRegistrationPayload([]byte(in)); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

func TestBestFormat(t *testing.T) {
	all := []ContentFormat{FormatText, FormatTLV, FormatSenMLJSON, FormatSenMLCBOR, FormatLwM2MJSON, FormatLwM2MCBOR}
	cases := []struct {
		announced []ContentFormat
		version   string
		want      ContentFormat
	}{
		{all, "1.2", FormatLwM2MCBOR},
		{[]ContentFormat{FormatTLV, FormatSenMLCBOR, FormatSenMLJSON}, "1.2", FormatSenMLCBOR},
		{[]ContentFormat{FormatTLV, FormatSenMLJSON}, "1.2", FormatSenMLJSON},
		{all, "1.1", FormatSenMLCBOR},
		{[]ContentFormat{FormatSenMLJSON, FormatTLV}, "1.1", FormatTLV},
		{[]ContentFormat{FormatSenMLJSON}, "1.1", FormatSenMLJSON},
		{all, "1.0", FormatTLV},
		{[]ContentFormat{FormatLwM2MJSON}, "1.0", FormatLwM2MJSON},
		{nil, "1.0", FormatTLV},
		{nil, "1.1", FormatTLV},
		{nil, "1.2", FormatSenMLCBOR},
	}
	for _, c := range cases {
		if got := BestFormat(c.announced, c.version); got != c.want {
			t.Errorf("BestFormat(%v, %s) = %v, want %v", c.announced, c.version, got, c.want)
		}
	}
}

// Real clients write ct as a comma list, omit the leading slash and put
// spaces after commas; the payload is still understood.
func TestLinkFormat_LenientRegistration(t *testing.T) {
	r, err := ParseRegistrationPayload([]byte(`</>;ct=110,112,11543;hb,<1/0>, <3/0>`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Formats, []ContentFormat{110, 112, 11543}) || len(r.Objects) != 2 || r.Objects[1].ID != 3 {
		t.Fatalf("%+v", r)
	}
}

// LwM2M 1.1 Core 5.2.7.1, Bootstrap-Discover answer: the root link with
// the enabler version, Security instances with ssid and uri (built from
// the spec text).
func TestLinkFormat_SpecExample_BootstrapDiscover(t *testing.T) {
	payload := `</>;lwm2m=1.1,</0/0>;ssid=101;uri="coaps://server_1.example.com",</0/1>,</1/0>;ssid=101,</3/0>`
	links, err := ParseLinks([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := links[0].Attr("lwm2m"); links[0].Target != "/" || v != "1.1" {
		t.Fatalf("root link %+v", links[0])
	}
	if v, _ := links[1].Attr("uri"); v != "coaps://server_1.example.com" {
		t.Fatalf("uri %q", v)
	}
	if got := string(FormatLinks(links)); got != payload {
		t.Errorf("re-encoded %s", got)
	}
	// LwM2M 1.0 writes the version as a bare first parameter.
	links, err = ParseLinks([]byte(`lwm2m="1.0",</0/0>;ssid=1,</0/1>, </1/0>;ssid=1,</3/0>`))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := links[0].Attr("lwm2m"); len(links) != 5 || links[0].Target != "/" || v != "1.0" {
		t.Fatalf("1.0 answer %+v", links)
	}
	if _, err := ParseLinks([]byte(`lwm2m="1.0" </0/0>`)); err == nil {
		t.Fatal("missing comma accepted")
	}
}
