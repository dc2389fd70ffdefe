package lwm2m

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestPath_ParseAndRelations(t *testing.T) {
	p := MustParsePath("/3/0/6/1")
	if !p.IsResourceInstance() || p.Object() != 3 || p.Instance() != 0 || p.Resource() != 6 || p.ResourceInstance() != 1 {
		t.Fatalf("%v", p)
	}
	if p.Parent() != ResourcePath(3, 0, 6) || p.Parent().Parent().Parent().Parent() != Root || Root.Parent() != Root {
		t.Error("Parent")
	}
	if !InstancePath(3, 0).Contains(p) || ObjectPath(4).Contains(p) || p.Contains(InstancePath(3, 0)) {
		t.Error("Contains")
	}
	if _, ok := p.Child(1); ok {
		t.Error("Child below a resource instance")
	}
	if !ResourcePath(3, 0, 6).Less(ResourcePath(3, 0, 7)) || !InstancePath(3, 0).Less(ResourcePath(3, 0, 0)) || !ObjectPath(2).Less(ObjectPath(10)) {
		t.Error("Less")
	}
	for _, s := range []string{"/3/0/x", "/3//0", "/70000", "/1/2/3/4/5", "/-1"} {
		if _, err := ParsePath(s); !errors.Is(err, ErrBadPath) {
			t.Errorf("%q: %v", s, err)
		}
	}
	b, err := json.Marshal(map[string]Path{"p": p})
	if err != nil || string(b) != `{"p":"/3/0/6/1"}` {
		t.Fatalf("marshal %s %v", b, err)
	}
	var back map[string]Path
	if err := json.Unmarshal(b, &back); err != nil || back["p"] != p {
		t.Fatalf("unmarshal %v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"p":"/x"}`), &back); err == nil {
		t.Fatal("bad path unmarshalled")
	}
}
