package client

import (
	"errors"
	"testing"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

func testObject() *SimpleObject {
	o := NewSimpleObject(3303, "1.1", true,
		ResourceDef{ID: 5700, Name: "Sensor Value", Type: lwm2m.TypeFloat, Operations: objects.R},
		ResourceDef{ID: 5750, Name: "Application Type", Type: lwm2m.TypeString, Operations: objects.RW},
		ResourceDef{ID: 5605, Name: "Reset", Operations: objects.E},
		ResourceDef{ID: 7000, Name: "Tags", Type: lwm2m.TypeString, Operations: objects.RW, Multiple: true},
	)
	o.AddInstance(0, map[uint16]lwm2m.Value{5700: lwm2m.Float(21.5), 5750: lwm2m.String("room")})
	_ = o.SetMultiple(lwm2m.ResourcePath(3303, 0, 7000), map[uint16]lwm2m.Value{0: lwm2m.String("a"), 1: lwm2m.String("b")})
	return o
}

func TestSimpleObjectReadSkipsExecutableAndOrders(t *testing.T) {
	o := testObject()
	es, err := o.Read(lwm2m.InstancePath(3303, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/3303/0/5700", "/3303/0/5750", "/3303/0/7000/0", "/3303/0/7000/1"}
	if len(es) != len(want) {
		t.Fatalf("read %v", es)
	}
	for i, e := range es {
		if e.Path.String() != want[i] {
			t.Errorf("entry %d is %v, want %s", i, e.Path, want[i])
		}
	}
	defs, _ := o.Resources(0)
	if len(defs) != 4 || defs[2].ID != 5750 && defs[2].ID != 5605 {
		t.Errorf("resources %v", defs)
	}
}

// A write is all or nothing: one bad entry leaves every value as it was.
func TestSimpleObjectWriteIsAtomic(t *testing.T) {
	o := testObject()
	err := o.Write(lwm2m.InstancePath(3303, 0), []lwm2m.Entry{
		{Path: lwm2m.ResourcePath(3303, 0, 5750), Value: lwm2m.String("kitchen")},
		{Path: lwm2m.ResourcePath(3303, 0, 5700), Value: lwm2m.Float(0)},
	}, false)
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("write of a read-only resource: %v", err)
	}
	if v, _ := o.Get(lwm2m.ResourcePath(3303, 0, 5750)); v.Str() != "room" {
		t.Errorf("failed write changed 5750 to %v", v)
	}
	for _, e := range []lwm2m.Entry{
		{Path: lwm2m.ResourcePath(3303, 0, 9), Value: lwm2m.String("x")},               // unknown
		{Path: lwm2m.ResourcePath(3303, 0, 7000), Value: lwm2m.String("x")},            // multiple written as single
		{Path: lwm2m.ResourcePath(3303, 1, 5750), Value: lwm2m.String("x")},            // other instance
		{Path: lwm2m.ResourceInstancePath(3303, 0, 5750, 0), Value: lwm2m.String("x")}, // single as multiple
	} {
		if err := o.Write(lwm2m.InstancePath(3303, 0), []lwm2m.Entry{e}, false); err == nil {
			t.Errorf("write %v accepted", e.Path)
		}
	}
}

// LwM2M Core 5.4.3: Replace of a multiple resource drops the instances not
// written; Partial Update keeps them.
func TestSimpleObjectReplaceAndPartialUpdate(t *testing.T) {
	o := testObject()
	rp := lwm2m.ResourcePath(3303, 0, 7000)
	if err := o.Write(rp, []lwm2m.Entry{{Path: lwm2m.ResourceInstancePath(3303, 0, 7000, 5), Value: lwm2m.String("z")}}, false); err != nil {
		t.Fatal(err)
	}
	if es, _ := o.Read(rp); len(es) != 3 {
		t.Errorf("after partial update %v", es)
	}
	if err := o.Write(rp, []lwm2m.Entry{{Path: lwm2m.ResourceInstancePath(3303, 0, 7000, 9), Value: lwm2m.String("y")}}, true); err != nil {
		t.Fatal(err)
	}
	es, _ := o.Read(rp)
	if len(es) != 1 || es[0].Path.ResourceInstance() != 9 {
		t.Errorf("after replace %v", es)
	}
}

func TestSimpleObjectCreateDeleteExecuteHook(t *testing.T) {
	o := testObject()
	var changed []lwm2m.Path
	o.SetChangeHook(func(p lwm2m.Path) { changed = append(changed, p) })
	if err := o.Create(0, nil); !errors.Is(err, ErrBadRequest) {
		t.Errorf("create over an existing instance: %v", err)
	}
	if err := o.Create(1, []lwm2m.Entry{{Path: lwm2m.ResourcePath(3303, 1, 5750), Value: lwm2m.String("hall")}}); err != nil {
		t.Fatal(err)
	}
	if ids := o.Instances(); len(ids) != 2 || ids[1] != 1 {
		t.Errorf("instances %v", ids)
	}
	ran := false
	o.OnExecute(5605, func(inst uint16, args string) error { ran = inst == 1; return nil })
	if err := o.Execute(lwm2m.ResourcePath(3303, 1, 5605), ""); err != nil || !ran {
		t.Errorf("execute: %v ran=%v", err, ran)
	}
	if err := o.Execute(lwm2m.ResourcePath(3303, 1, 5750), ""); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("execute of a value: %v", err)
	}
	if err := o.Delete(1); err != nil {
		t.Fatal(err)
	}
	if err := o.Delete(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if len(changed) == 0 || changed[0] != lwm2m.InstancePath(3303, 1) {
		t.Errorf("change hook saw %v", changed)
	}
	dev := NewDeviceObject(DeviceInfo{}, "U")
	if err := dev.Create(1, nil); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("create on single-instance Device: %v", err)
	}
}
