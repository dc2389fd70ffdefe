package lwm2m

import (
	"errors"
	"testing"
)

func TestAttributes_FromDiscoverLink(t *testing.T) {
	links, err := ParseLinks([]byte(`</3/0/7>;dim=2;pmin=10;pmax=60;gt=50;lt=42.2;st=0.5;epmin=1;epmax=3600;ver=1.1;foo=bar`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := AttributesOf(links[0])
	if err != nil {
		t.Fatal(err)
	}
	if *a.Dim != 2 || *a.Pmin != 10 || *a.Pmax != 60 || *a.Gt != 50 || *a.Lt != 42.2 || *a.St != 0.5 || *a.Epmin != 1 || *a.Epmax != 3600 || a.Ver != "1.1" {
		t.Fatalf("%+v", a)
	}
	got := string(FormatLinks([]WebLink{{Target: "/3/0/7", Attrs: a.LinkAttrs()}}))
	if got != `</3/0/7>;ver=1.1;dim=2;pmin=10;pmax=60;gt=50;lt=42.2;st=0.5;epmin=1;epmax=3600` {
		t.Errorf("written %s", got)
	}
}

func TestAttributes_Errors(t *testing.T) {
	for _, kv := range [][2]string{{"pmin", "-1"}, {"pmax", "x"}, {"dim", "256"}, {"gt", "abc"}, {"ver", "1"}, {"ver", "1.x"}} {
		var a Attributes
		if ok, err := a.Set(kv[0], kv[1]); !ok || !errors.Is(err, ErrLinkFormat) {
			t.Errorf("%s=%s: ok %v err %v", kv[0], kv[1], ok, err)
		}
	}
	var a Attributes
	if ok, err := a.Set("unknown", "1"); ok || err != nil {
		t.Errorf("unknown attribute: %v %v", ok, err)
	}
}

func TestDiscover_ParseAndFormat(t *testing.T) {
	payload := `</3>;ver=1.1;pmin=10,</3/0>,</3/0/6>;dim=2,</3/0/7>;gt=50;lt=42.2`
	nodes, err := ParseDiscover([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 4 || nodes[0].Attrs.Ver != "1.1" || *nodes[0].Attrs.Pmin != 10 || *nodes[2].Attrs.Dim != 2 || nodes[3].Path != ResourcePath(3, 0, 7) {
		t.Fatalf("%+v", nodes)
	}
	if got := string(FormatDiscover(nodes)); got != payload {
		t.Errorf("written %s", got)
	}
	for _, bad := range []string{`</3/x>`, `</3/0/6>;dim=300`, `</3/0/7>;gt=high`} {
		if _, err := ParseDiscover([]byte(bad)); !errors.Is(err, ErrLinkFormat) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
