package api

import (
	"encoding/json"
	"testing"

	"github.com/fotastack/fota/lwm2m"
)

func TestNodeEntries(t *testing.T) {
	cases := []struct {
		name, base, body string
		want             []string // path=text
		err              bool
	}{
		{"single typed by registry", "/1/0/1", `{"id":1,"kind":"singleResource","value":600}`, []string{"/1/0/1=600"}, false},
		{"instance", "/1/0", `{"id":0,"kind":"instance","resources":[{"id":3,"kind":"singleResource","value":5},{"id":1,"kind":"singleResource","value":60}]}`,
			[]string{"/1/0/1=60", "/1/0/3=5"}, false},
		{"create under object", "/3303", `{"id":2,"kind":"instance","resources":[{"id":5700,"kind":"singleResource","value":21.5,"type":"float"}]}`,
			[]string{"/3303/2/5700=21.5"}, false},
		{"multi", "/3/0/6", `{"id":6,"kind":"multiResource","values":{"1":5,"0":1},"type":"integer"}`, []string{"/3/0/6/0=1", "/3/0/6/1=5"}, false},
		{"bad type", "/1/0/1", `{"kind":"singleResource","value":"abc","type":"integer"}`, nil, true},
		{"unknown kind", "/1/0/1", `{"kind":"tree","value":1}`, nil, true},
		{"instance without id under object", "/1", `{"kind":"instance","resources":[]}`, nil, true},
		{"no value", "/1/0/1", `{"kind":"singleResource"}`, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var n apiNode
			if err := json.Unmarshal([]byte(c.body), &n); err != nil {
				t.Fatal(err)
			}
			es, err := nodeEntries(lwm2m.MustParsePath(c.base), n)
			if c.err {
				if err == nil {
					t.Fatalf("accepted: %v", es)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Path.String()+"="+e.Value.Text())
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

func FuzzNodeEntries(f *testing.F) {
	f.Add("/1/0", `{"id":0,"kind":"instance","resources":[{"id":1,"kind":"singleResource","value":60}]}`)
	f.Add("/3/0/6", `{"id":6,"kind":"multiResource","values":{"0":1},"type":"integer"}`)
	f.Add("/1/0/1", `{"kind":"singleResource","value":"x","type":"string"}`)
	f.Fuzz(func(t *testing.T, base, body string) {
		p, err := lwm2m.ParsePath(base)
		if err != nil {
			return
		}
		var n apiNode
		if json.Unmarshal([]byte(body), &n) != nil {
			return
		}
		es, err := nodeEntries(p, n)
		if err != nil {
			return
		}
		for _, e := range es {
			if !p.Contains(e.Path) && !(p.IsObject() && p.Contains(e.Path)) {
				t.Fatalf("entry %v outside %v", e.Path, p)
			}
		}
	})
}
