package firmware

import (
	"errors"
	"reflect"
	"slices"
	"strings"
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

// The Package URI length limit is the model's range (0..255 bytes): a
// longer URI is refused with 4.00 before the state machine sees it.
func TestPackageURILimitIsTheModelsRange(t *testing.T) {
	if maxURILen != 255 {
		t.Fatalf("maxURILen = %d, want 255 (LwM2M Core E.6)", maxURILen)
	}
	d := newDevice(t, nil)
	long := "coap://127.0.0.1:1/" + strings.Repeat("a", maxURILen+1-len("coap://127.0.0.1:1/"))
	if err := writeURI(d.o, long); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("write of a %d-byte Package URI: %v, want ErrBadRequest", len(long), err)
	}
	if s, _ := d.o.State(); s != StateIdle {
		t.Errorf("state %v after a refused URI, want Idle", s)
	}
}
