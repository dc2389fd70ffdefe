package lwm2m

import (
	"fmt"
	"slices"
)

// The node model is the tree form of LwM2M data (LwM2M Core 6.1): objects
// hold instances, instances hold resources, and a multiple resource holds
// resource instances. Codecs work on the flat []Entry form; EntriesOf and
// BuildTree convert between the two.

// Object is an object with its instances.
type Object struct {
	ID        uint16
	Instances map[uint16]*Instance
}

// Instance is an object instance with its resources.
type Instance struct {
	ID        uint16
	Resources map[uint16]*Resource
}

// Resource is a single resource (Multiple false, Value set) or a multiple
// resource (Multiple true, Instances set, Value unused).
type Resource struct {
	ID        uint16
	Multiple  bool
	Value     Value
	Instances map[uint16]Value
}

// Tree is the result of BuildTree: the objects below the base path. A read
// of /3/0 gives one Object with one Instance.
type Tree struct {
	Objects map[uint16]*Object
}

// Node is what EntriesOf flattens: *Object, *Instance, *Resource or *Tree.
type Node interface{ isNode() }

func (*Object) isNode()   {}
func (*Instance) isNode() {}
func (*Resource) isNode() {}
func (*Tree) isNode()     {}

// EntriesOf flattens a node into entries ordered by path. base is the path
// of the node's parent level: the object ID for an *Instance (base /o), the
// instance path for a *Resource (base /o/i); it is ignored for *Object and
// *Tree, which carry their own IDs.
func EntriesOf(base Path, n Node) ([]Entry, error) {
	var out []Entry
	switch n := n.(type) {
	case *Tree:
		for _, oid := range sortedKeys(n.Objects) {
			e, err := EntriesOf(Root, n.Objects[oid])
			if err != nil {
				return nil, err
			}
			out = append(out, e...)
		}
	case *Object:
		for _, iid := range sortedKeys(n.Instances) {
			e, err := EntriesOf(ObjectPath(n.ID), n.Instances[iid])
			if err != nil {
				return nil, err
			}
			out = append(out, e...)
		}
	case *Instance:
		if !base.IsObject() {
			return nil, fmt.Errorf("lwm2m: EntriesOf instance %d: base %v is not an object path", n.ID, base)
		}
		ip := InstancePath(base.Object(), n.ID)
		for _, rid := range sortedKeys(n.Resources) {
			e, err := EntriesOf(ip, n.Resources[rid])
			if err != nil {
				return nil, err
			}
			out = append(out, e...)
		}
	case *Resource:
		if !base.IsInstance() {
			return nil, fmt.Errorf("lwm2m: EntriesOf resource %d: base %v is not an instance path", n.ID, base)
		}
		rp, _ := base.Child(n.ID)
		if !n.Multiple {
			return []Entry{{Path: rp, Value: n.Value}}, nil
		}
		for _, ri := range sortedKeys(n.Instances) {
			p, _ := rp.Child(ri)
			out = append(out, Entry{Path: p, Value: n.Instances[ri]})
		}
	default:
		return nil, fmt.Errorf("lwm2m: EntriesOf: unknown node %T", n)
	}
	return out, nil
}

func sortedKeys[V any](m map[uint16]V) []uint16 {
	ks := make([]uint16, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// BuildTree assembles entries (with absolute paths, all below base) into a
// tree. An entry at /o/i/r makes a single resource, entries at /o/i/r/ri a
// multiple resource; mixing both for one resource, or repeating a path, is
// an error.
func BuildTree(base Path, entries []Entry) (*Tree, error) {
	t := &Tree{Objects: map[uint16]*Object{}}
	for _, e := range entries {
		p := e.Path
		if !base.Contains(p) || p.Len() < 3 {
			return nil, fmt.Errorf("lwm2m: BuildTree: %v is not a resource below %v", p, base)
		}
		o := t.Objects[p.Object()]
		if o == nil {
			o = &Object{ID: p.Object(), Instances: map[uint16]*Instance{}}
			t.Objects[o.ID] = o
		}
		in := o.Instances[p.Instance()]
		if in == nil {
			in = &Instance{ID: p.Instance(), Resources: map[uint16]*Resource{}}
			o.Instances[in.ID] = in
		}
		r := in.Resources[p.Resource()]
		multiple := p.IsResourceInstance()
		if r == nil {
			r = &Resource{ID: p.Resource(), Multiple: multiple}
			if multiple {
				r.Instances = map[uint16]Value{}
			}
			in.Resources[r.ID] = r
		} else if !r.Multiple || !multiple {
			return nil, fmt.Errorf("lwm2m: BuildTree: %v given twice or both as single and multiple resource", p)
		}
		if !multiple {
			r.Value = e.Value
			continue
		}
		if _, dup := r.Instances[p.ResourceInstance()]; dup {
			return nil, fmt.Errorf("lwm2m: BuildTree: %v given twice", p)
		}
		r.Instances[p.ResourceInstance()] = e.Value
	}
	return t, nil
}
