package client

import (
	"fmt"
	"sort"
	"sync"

	"github.com/fotastack/fota/lwm2m"
)

// SimpleObject is an Object whose resources are stored values: the
// generic implementation behind the built-in objects. Dynamic resources
// get a read function (OnRead), executable ones an execute function
// (OnExecute), and OnWrite lets the owner veto or react to writes.
type SimpleObject struct {
	id       uint16
	version  string
	multi    bool // multiple instances allowed (Create/Delete)
	defs     map[uint16]ResourceDef
	defOrder []uint16

	mu      sync.Mutex
	inst    map[uint16]*simpleInstance
	exec    map[uint16]func(inst uint16, args string) error
	reads   map[uint16]func(inst uint16) lwm2m.Value
	onWrite func(p lwm2m.Path, entries []lwm2m.Entry) error
	hook    func(lwm2m.Path)
}

type simpleInstance struct {
	single map[uint16]lwm2m.Value
	multi  map[uint16]map[uint16]lwm2m.Value
}

// NewSimpleObject makes an object with the given resource definitions and
// no instances. multiInstance allows the server to Create and Delete
// instances.
func NewSimpleObject(id uint16, version string, multiInstance bool, defs ...ResourceDef) *SimpleObject {
	o := &SimpleObject{
		id: id, version: version, multi: multiInstance,
		defs:  make(map[uint16]ResourceDef, len(defs)),
		inst:  map[uint16]*simpleInstance{},
		exec:  map[uint16]func(uint16, string) error{},
		reads: map[uint16]func(uint16) lwm2m.Value{},
	}
	for _, d := range defs {
		o.defs[d.ID] = d
		o.defOrder = append(o.defOrder, d.ID)
	}
	sort.Slice(o.defOrder, func(i, j int) bool { return o.defOrder[i] < o.defOrder[j] })
	return o
}

// ID implements Object.
func (o *SimpleObject) ID() uint16 { return o.id }

// Version implements Object.
func (o *SimpleObject) Version() string { return o.version }

// Def returns the definition of resource r.
func (o *SimpleObject) Def(r uint16) (ResourceDef, bool) { d, ok := o.defs[r]; return d, ok }

// SetChangeHook implements ChangeNotifier.
func (o *SimpleObject) SetChangeHook(f func(lwm2m.Path)) {
	o.mu.Lock()
	o.hook = f
	o.mu.Unlock()
}

// OnExecute sets the function run when the server executes resource r.
func (o *SimpleObject) OnExecute(r uint16, f func(inst uint16, args string) error) {
	o.mu.Lock()
	o.exec[r] = f
	o.mu.Unlock()
}

// OnRead makes resource r dynamic: f is called on every read (the current
// time of the Device object, for example).
func (o *SimpleObject) OnRead(r uint16, f func(inst uint16) lwm2m.Value) {
	o.mu.Lock()
	o.reads[r] = f
	o.mu.Unlock()
}

// OnWrite sets a function called before a server write is applied; an
// error rejects the write and is returned to the server.
func (o *SimpleObject) OnWrite(f func(p lwm2m.Path, entries []lwm2m.Entry) error) {
	o.mu.Lock()
	o.onWrite = f
	o.mu.Unlock()
}

// AddInstance creates instance inst with the given single-resource values;
// it replaces an existing instance of that ID. Unlike Create it is the
// device's own act, so no write-permission check applies.
func (o *SimpleObject) AddInstance(inst uint16, values map[uint16]lwm2m.Value) {
	in := &simpleInstance{single: map[uint16]lwm2m.Value{}, multi: map[uint16]map[uint16]lwm2m.Value{}}
	for r, v := range values {
		in.single[r] = v
	}
	o.mu.Lock()
	o.inst[inst] = in
	hook := o.hook
	o.mu.Unlock()
	if hook != nil {
		hook(lwm2m.InstancePath(o.id, inst))
	}
}

// RemoveInstance deletes instance inst, if present.
func (o *SimpleObject) RemoveInstance(inst uint16) {
	o.mu.Lock()
	delete(o.inst, inst)
	o.mu.Unlock()
}

// Set stores a single-resource value (p = /o/i/r) or a resource-instance
// value (p = /o/i/r/ri) as the device itself, without permission checks,
// and fires observations of p.
func (o *SimpleObject) Set(p lwm2m.Path, v lwm2m.Value) error {
	if p.Object() != o.id || p.Len() < 3 {
		return fmt.Errorf("set %v on object %d: %w", p, o.id, ErrNotFound)
	}
	o.mu.Lock()
	in, ok := o.inst[p.Instance()]
	if !ok {
		o.mu.Unlock()
		return notFound(p)
	}
	if p.IsResourceInstance() {
		m := in.multi[p.Resource()]
		if m == nil {
			m = map[uint16]lwm2m.Value{}
			in.multi[p.Resource()] = m
		}
		m[p.ResourceInstance()] = v
	} else {
		in.single[p.Resource()] = v
	}
	hook := o.hook
	o.mu.Unlock()
	if hook != nil {
		hook(p)
	}
	return nil
}

// SetMultiple replaces all instances of multiple resource p (/o/i/r).
func (o *SimpleObject) SetMultiple(p lwm2m.Path, vals map[uint16]lwm2m.Value) error {
	if p.Object() != o.id || !p.IsResource() {
		return fmt.Errorf("set %v on object %d: %w", p, o.id, ErrNotFound)
	}
	m := make(map[uint16]lwm2m.Value, len(vals))
	for k, v := range vals {
		m[k] = v
	}
	o.mu.Lock()
	in, ok := o.inst[p.Instance()]
	if !ok {
		o.mu.Unlock()
		return notFound(p)
	}
	in.multi[p.Resource()] = m
	hook := o.hook
	o.mu.Unlock()
	if hook != nil {
		hook(p)
	}
	return nil
}

// Get returns the stored (or dynamic) value at /o/i/r or /o/i/r/ri.
func (o *SimpleObject) Get(p lwm2m.Path) (lwm2m.Value, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, ok := o.inst[p.Instance()]
	if !ok || p.Object() != o.id {
		return lwm2m.Value{}, false
	}
	if p.IsResourceInstance() {
		v, ok := in.multi[p.Resource()][p.ResourceInstance()]
		return v, ok
	}
	if f := o.reads[p.Resource()]; f != nil && p.IsResource() {
		return f(p.Instance()), true
	}
	v, ok := in.single[p.Resource()]
	return v, ok
}

// Instances implements Object.
func (o *SimpleObject) Instances() []uint16 {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]uint16, 0, len(o.inst))
	for id := range o.inst {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// present reports whether resource r has a value (or is executable or
// dynamic) in instance in. The caller holds o.mu.
func (o *SimpleObject) present(in *simpleInstance, r uint16) bool {
	d := o.defs[r]
	if d.Executable() {
		return true
	}
	if _, ok := o.reads[r]; ok {
		return true
	}
	if d.Multiple {
		_, ok := in.multi[r]
		return ok
	}
	_, ok := in.single[r]
	return ok
}

// Resources implements Object.
func (o *SimpleObject) Resources(inst uint16) ([]ResourceDef, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, ok := o.inst[inst]
	if !ok {
		return nil, notFound(lwm2m.InstancePath(o.id, inst))
	}
	var out []ResourceDef
	for _, r := range o.defOrder {
		if o.present(in, r) {
			out = append(out, o.defs[r])
		}
	}
	return out, nil
}

// Read implements Object.
func (o *SimpleObject) Read(p lwm2m.Path) ([]lwm2m.Entry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	in, ok := o.inst[p.Instance()]
	if !ok || p.Object() != o.id || p.Len() < 2 {
		return nil, notFound(p)
	}
	if p.IsInstance() {
		var out []lwm2m.Entry
		for _, r := range o.defOrder {
			d := o.defs[r]
			if !d.Readable() || !o.present(in, r) {
				continue
			}
			out = o.appendResource(out, in, p.Instance(), d)
		}
		return out, nil
	}
	d, ok := o.defs[p.Resource()]
	if !ok || !o.present(in, d.ID) {
		return nil, notFound(p)
	}
	if !d.Readable() {
		return nil, fmt.Errorf("read %v: %w", p, ErrNotAllowed)
	}
	if p.IsResourceInstance() {
		v, ok := in.multi[d.ID][p.ResourceInstance()]
		if !d.Multiple || !ok {
			return nil, notFound(p)
		}
		return []lwm2m.Entry{{Path: p, Value: v}}, nil
	}
	return o.appendResource(nil, in, p.Instance(), d), nil
}

// appendResource adds the entries of resource d; the caller holds o.mu.
func (o *SimpleObject) appendResource(out []lwm2m.Entry, in *simpleInstance, inst uint16, d ResourceDef) []lwm2m.Entry {
	rp := lwm2m.ResourcePath(o.id, inst, d.ID)
	if d.Multiple {
		m := in.multi[d.ID]
		ids := make([]uint16, 0, len(m))
		for k := range m {
			ids = append(ids, k)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, k := range ids {
			out = append(out, lwm2m.Entry{Path: lwm2m.ResourceInstancePath(o.id, inst, d.ID, k), Value: m[k]})
		}
		return out
	}
	if f := o.reads[d.ID]; f != nil {
		return append(out, lwm2m.Entry{Path: rp, Value: f(inst)})
	}
	return append(out, lwm2m.Entry{Path: rp, Value: in.single[d.ID]})
}

// Write implements Object.
func (o *SimpleObject) Write(p lwm2m.Path, entries []lwm2m.Entry, replace bool) error {
	if p.Object() != o.id || p.Len() < 2 {
		return notFound(p)
	}
	// Check everything before changing anything: a write is all or nothing.
	for _, e := range entries {
		if !p.Contains(e.Path) || e.Path.Len() < 3 {
			return fmt.Errorf("write %v: entry %v outside the target: %w", p, e.Path, ErrBadRequest)
		}
		d, ok := o.defs[e.Path.Resource()]
		if !ok {
			return fmt.Errorf("write %v: %w", e.Path, ErrNotFound)
		}
		if !d.Writable() {
			return fmt.Errorf("write %v: resource is not writable: %w", e.Path, ErrNotAllowed)
		}
		if e.Path.IsResourceInstance() != d.Multiple {
			return fmt.Errorf("write %v: single/multiple mismatch: %w", e.Path, ErrBadRequest)
		}
	}
	o.mu.Lock()
	in, ok := o.inst[p.Instance()]
	onWrite := o.onWrite
	o.mu.Unlock()
	if !ok {
		return notFound(p)
	}
	if onWrite != nil {
		if err := onWrite(p, entries); err != nil {
			return err
		}
	}
	o.mu.Lock()
	if replace && p.IsInstance() {
		// LwM2M Core 5.4.3: Replace on an instance replaces the writable
		// resources it carries; multiple resources are replaced whole.
		for _, e := range entries {
			if e.Path.IsResourceInstance() {
				in.multi[e.Path.Resource()] = map[uint16]lwm2m.Value{}
			}
		}
	}
	if replace && p.IsResource() {
		if d := o.defs[p.Resource()]; d.Multiple {
			in.multi[p.Resource()] = map[uint16]lwm2m.Value{}
		}
	}
	for _, e := range entries {
		if e.Path.IsResourceInstance() {
			m := in.multi[e.Path.Resource()]
			if m == nil {
				m = map[uint16]lwm2m.Value{}
				in.multi[e.Path.Resource()] = m
			}
			m[e.Path.ResourceInstance()] = e.Value
		} else {
			in.single[e.Path.Resource()] = e.Value
		}
	}
	hook := o.hook
	o.mu.Unlock()
	if hook != nil {
		hook(p)
	}
	return nil
}

// Execute implements Object.
func (o *SimpleObject) Execute(p lwm2m.Path, args string) error {
	if !p.IsResource() || p.Object() != o.id {
		return fmt.Errorf("execute %v: %w", p, ErrNotAllowed)
	}
	o.mu.Lock()
	_, ok := o.inst[p.Instance()]
	f := o.exec[p.Resource()]
	o.mu.Unlock()
	d, known := o.defs[p.Resource()]
	if !ok || !known {
		return notFound(p)
	}
	if !d.Executable() {
		return fmt.Errorf("execute %v: resource is not executable: %w", p, ErrNotAllowed)
	}
	if f == nil {
		return nil
	}
	return f(p.Instance(), args)
}

// Create implements Object.
func (o *SimpleObject) Create(inst uint16, entries []lwm2m.Entry) error {
	p := lwm2m.InstancePath(o.id, inst)
	if !o.multi {
		return fmt.Errorf("create %v: object %d is single-instance: %w", p, o.id, ErrNotAllowed)
	}
	o.mu.Lock()
	_, exists := o.inst[inst]
	o.mu.Unlock()
	if exists {
		return fmt.Errorf("create %v: instance exists: %w", p, ErrBadRequest)
	}
	for _, e := range entries {
		if !p.Contains(e.Path) || e.Path.Len() < 3 {
			return fmt.Errorf("create %v: entry %v outside the instance: %w", p, e.Path, ErrBadRequest)
		}
		d, ok := o.defs[e.Path.Resource()]
		if !ok {
			return fmt.Errorf("create %v: %w", e.Path, ErrNotFound)
		}
		if e.Path.IsResourceInstance() != d.Multiple {
			return fmt.Errorf("create %v: single/multiple mismatch: %w", e.Path, ErrBadRequest)
		}
	}
	in := &simpleInstance{single: map[uint16]lwm2m.Value{}, multi: map[uint16]map[uint16]lwm2m.Value{}}
	for _, e := range entries {
		if e.Path.IsResourceInstance() {
			m := in.multi[e.Path.Resource()]
			if m == nil {
				m = map[uint16]lwm2m.Value{}
				in.multi[e.Path.Resource()] = m
			}
			m[e.Path.ResourceInstance()] = e.Value
		} else {
			in.single[e.Path.Resource()] = e.Value
		}
	}
	o.mu.Lock()
	o.inst[inst] = in
	hook := o.hook
	o.mu.Unlock()
	if hook != nil {
		hook(p)
	}
	return nil
}

// Delete implements Object.
func (o *SimpleObject) Delete(inst uint16) error {
	p := lwm2m.InstancePath(o.id, inst)
	if !o.multi {
		return fmt.Errorf("delete %v: object %d is single-instance: %w", p, o.id, ErrNotAllowed)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.inst[inst]; !ok {
		return notFound(p)
	}
	delete(o.inst, inst)
	return nil
}
