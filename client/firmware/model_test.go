package firmware

import (
	"reflect"
	"slices"
	"testing"

	"github.com/fotastack/fota/client"
)

// TestObjectIsTheRegistrysFirmwareUpdate: the object announces the
// version client.FirmwareObjectVersion and presents the registry's
// definition of every resource of Firmware Update at that version (it
// implements them all), not definitions of its own.
func TestObjectIsTheRegistrysFirmwareUpdate(t *testing.T) {
	o := &Object{} // Version and Resources read no state
	m, ok := client.Model(ObjectID, o.Version())
	if !ok || o.Version() != client.FirmwareObjectVersion {
		t.Fatalf("version %s: registry has it %v, want %s", o.Version(), ok, client.FirmwareObjectVersion)
	}
	got, err := o.Resources(0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint16
	for _, d := range got {
		ids = append(ids, d.ID)
		r, ok := m.Resource(d.ID)
		if !ok {
			t.Errorf("%v defines no resource %d", m, d.ID)
			continue
		}
		if !reflect.DeepEqual(d, *r) {
			t.Errorf("resource %d: the object presents %v, the registry %v", d.ID, &d, r)
		}
	}
	if !slices.Equal(ids, m.ResourceIDs()) {
		t.Errorf("resources %v, want every resource of %v: %v", ids, m, m.ResourceIDs())
	}
}
