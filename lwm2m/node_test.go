package lwm2m

import "testing"

func TestNode_TreeRoundTrip(t *testing.T) {
	tree, err := BuildTree(InstancePath(3, 0), deviceEntries())
	if err != nil {
		t.Fatal(err)
	}
	in := tree.Objects[3].Instances[0]
	if r := in.Resources[6]; !r.Multiple || len(r.Instances) != 2 || !r.Instances[1].Equal(Integer(5)) {
		t.Fatalf("resource 6: %+v", r)
	}
	if r := in.Resources[0]; r.Multiple || r.Value.Str() != "Open Mobile Alliance" {
		t.Fatalf("resource 0: %+v", r)
	}
	for _, n := range []struct {
		base Path
		node Node
	}{{Root, tree}, {Root, tree.Objects[3]}, {ObjectPath(3), in}} {
		got, err := EntriesOf(n.base, n.node)
		if err != nil || !entriesEqual(got, deviceEntries()) {
			t.Fatalf("EntriesOf(%T): %v %v", n.node, got, err)
		}
	}
	got, err := EntriesOf(InstancePath(3, 0), in.Resources[6])
	if err != nil || !entriesEqual(got, deviceEntries()[4:6]) {
		t.Fatalf("EntriesOf(resource): %v %v", got, err)
	}
}

func TestNode_BuildTreeErrors(t *testing.T) {
	bad := [][]Entry{
		{{ResourcePath(3, 0, 1), String("a")}, {ResourcePath(3, 0, 1), String("b")}},
		{{ResourcePath(3, 0, 6), Integer(1)}, {ResourceInstancePath(3, 0, 6, 0), Integer(1)}},
		{{ResourceInstancePath(3, 0, 6, 0), Integer(1)}, {ResourceInstancePath(3, 0, 6, 0), Integer(2)}},
		{{InstancePath(3, 0), Integer(1)}},
		{{ResourcePath(4, 0, 1), Integer(1)}},
	}
	for i, es := range bad {
		if _, err := BuildTree(ObjectPath(3), es); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	if _, err := EntriesOf(Root, &Instance{ID: 0}); err == nil {
		t.Error("instance without object base accepted")
	}
}
