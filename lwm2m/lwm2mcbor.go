package lwm2m

import (
	"fmt"
	"math"
	"slices"
)

// LwM2M CBOR (11544, LwM2M 1.2 Core 7.4.6): nested CBOR maps keyed by path
// IDs from the root, with values (Table 7.4.5-1 items) at the leaves. A key
// is one ID (unsigned integer) or several (an array of unsigned integers)
// when a level has a single child, so a read of /3/0/9 can be {[3,0,9]:
// 100}. A null leaf names a path without a value (Read-Composite request
// paths, LwM2M Core 7.4.6.1). Paths are absolute, so one payload may span
// objects.
//
// fxamacker/cbor cannot decode maps with array keys into Go maps, so the map
// structure is walked here and every key and leaf item is decoded by
// fxamacker (with the bounded cborDec mode).

const lcName = "lwm2m+cbor"

type lcDecoder struct {
	data  []byte
	types TypeResolver
	base  Path
	// withNull accepts null leaves and collects them in paths.
	withNull bool
	entries  []Entry
	paths    []Path
	seen     map[Path]bool
}

func decodeLwM2MCBOR(base Path, data []byte, types TypeResolver) ([]Entry, error) {
	d := &lcDecoder{data: data, types: types, base: base, seen: map[Path]bool{}}
	if err := d.top(); err != nil {
		return nil, err
	}
	return d.entries, nil
}

func (d *lcDecoder) top() error {
	if len(d.data) == 0 {
		return decodeErr(lcName, 0, "empty payload, want a map")
	}
	end, err := d.mapAt(0, Root)
	if err != nil {
		return err
	}
	if end != len(d.data) {
		return decodeErr(lcName, end, "%d bytes after the map", len(d.data)-end)
	}
	return nil
}

// cborHead reads the initial byte and argument of the item at off
// (RFC 8949 3). indef is set for indefinite length (additional info 31).
func cborHead(data []byte, off int) (major byte, arg uint64, indef bool, next int, err error) {
	if off >= len(data) {
		return 0, 0, false, off, decodeErr(lcName, off, "unexpected end of data")
	}
	b := data[off]
	major, ai := b>>5, b&0x1f
	next = off + 1
	switch {
	case ai < 24:
		return major, uint64(ai), false, next, nil
	case ai == 31:
		return major, 0, true, next, nil
	case ai > 27:
		return major, 0, false, next, decodeErr(lcName, off, "reserved additional information %d", ai)
	}
	n := 1 << (ai - 24)
	if len(data)-next < n {
		return major, 0, false, next, decodeErr(lcName, off, "argument needs %d bytes, %d remain", n, len(data)-next)
	}
	for i := 0; i < n; i++ {
		arg = arg<<8 | uint64(data[next+i])
	}
	return major, arg, false, next + n, nil
}

// mapAt walks the map at off whose keys extend prefix; it returns the
// offset after the map.
func (d *lcDecoder) mapAt(off int, prefix Path) (int, error) {
	major, n, indef, p, err := cborHead(d.data, off)
	if err != nil {
		return 0, err
	}
	if major != 5 {
		return 0, decodeErr(lcName, off, "major type %d, want a map (5)", major)
	}
	// Each pair takes at least two bytes: reject impossible counts before
	// looping on them.
	if !indef && n > uint64(len(d.data)-p)/2 {
		return 0, decodeErr(lcName, off, "map of %d pairs exceeds the remaining %d bytes", n, len(d.data)-p)
	}
	for i := uint64(0); indef || i < n; i++ {
		if indef {
			if p >= len(d.data) {
				return 0, decodeErr(lcName, p, "indefinite map not terminated")
			}
			if d.data[p] == 0xff {
				return p + 1, nil
			}
		}

		var path Path
		if path, p, err = d.key(p, prefix); err != nil {
			return 0, err
		}
		if p >= len(d.data) {
			return 0, decodeErr(lcName, p, "map value missing for key %v", path)
		}
		if d.data[p]>>5 == 5 {
			if path.Len() >= 4 {
				return 0, decodeErr(lcName, p, "map below %v, which has no children", path)
			}
			if p, err = d.mapAt(p, path); err != nil {
				return 0, err
			}
			continue
		}
		valOff := p
		var x any
		if x, p, err = d.item(p); err != nil {
			return 0, decodeErr(lcName, valOff, "value of %v: %v", path, err)
		}
		if err := d.leaf(valOff, path, x); err != nil {
			return 0, err
		}
	}
	return p, nil
}

// key reads the map key at off, an ID or a definite array of IDs
// (LwM2M Core 7.4.6), and appends it to prefix. Keys are parsed here rather
// than by fxamacker: they are small unsigned integers, and this keeps the
// decoder's allocations to the values.
func (d *lcDecoder) key(off int, prefix Path) (Path, int, error) {
	major, n, indef, p, err := cborHead(d.data, off)
	if err != nil {
		return prefix, 0, err
	}
	count := uint64(1)
	switch {
	case major == 0:
		p = off
	case major == 4 && !indef && n > 0:
		count = n
	default:
		return prefix, 0, decodeErr(lcName, off, "map key of major type %d, want an ID or a non-empty array of IDs", major)
	}
	path := prefix
	for i := uint64(0); i < count; i++ {
		idOff := p
		var m byte
		var id uint64
		if m, id, indef, p, err = cborHead(d.data, p); err != nil {
			return prefix, 0, err
		}
		if m != 0 || indef || id > MaxID {
			return prefix, 0, decodeErr(lcName, idOff, "path element below %v is not an ID 0..%d", path, MaxID)
		}
		var ok bool
		if path, ok = path.Child(uint16(id)); !ok {
			return prefix, 0, decodeErr(lcName, idOff, "key below %v makes a path deeper than 4 levels", prefix)
		}
	}
	return path, p, nil
}

// item decodes the leaf item at off. Integers, booleans and null, the
// common leaves, are read here; everything else goes through fxamacker.
func (d *lcDecoder) item(off int) (any, int, error) {
	major, n, indef, p, err := cborHead(d.data, off)
	if err == nil && !indef {
		switch {
		case major == 0:
			return n, p, nil
		case major == 1 && n <= math.MaxInt64:
			return -1 - int64(n), p, nil
		case d.data[off] == 0xf4 || d.data[off] == 0xf5:
			return d.data[off] == 0xf5, p, nil
		case d.data[off] == 0xf6:
			return nil, p, nil
		}
	}
	var x any
	rest, err := cborDec.UnmarshalFirst(d.data[off:], &x)
	if err != nil {
		return nil, 0, err
	}
	return x, len(d.data) - len(rest), nil
}

func (d *lcDecoder) leaf(off int, p Path, x any) error {
	if d.seen[p] {
		return decodeErr(lcName, off, "%v given twice", p)
	}
	d.seen[p] = true
	if x == nil {
		if !d.withNull {
			return decodeErr(lcName, off, "%v has a null value", p)
		}
		d.paths = append(d.paths, p)
		return nil
	}
	if p.Len() < 3 || !d.base.Contains(p) {
		return decodeErr(lcName, off, "%v is not a resource below the request path %v", p, d.base)
	}
	v, err := typedCBOR(x, p, d.types)
	if err != nil {
		return fmt.Errorf("%w: %s: byte %d: %v: %w", ErrDecode, lcName, off, p, err)
	}
	d.entries = append(d.entries, Entry{Path: p, Value: v})
	return nil
}

// lcNode is one level of the tree the encoder writes.
type lcNode struct {
	id   uint16
	kids []*lcNode
	leaf bool
	val  any // CBOR item; nil for a null leaf
}

func (n *lcNode) child(id uint16) *lcNode {
	if k := len(n.kids); k > 0 && n.kids[k-1].id == id {
		return n.kids[k-1]
	}
	c := &lcNode{id: id}
	n.kids = append(n.kids, c)
	return c
}

// lcTree builds the tree of sorted paths; items[i] is the leaf of paths[i].
func lcTree(paths []Path, items []any) (*lcNode, error) {
	root := &lcNode{}
	for i, p := range paths {
		if i > 0 && paths[i-1].Contains(p) {
			return nil, fmt.Errorf("lwm2m: %s: %v given twice or below another value", lcName, p)
		}
		n := root
		for _, id := range p.IDs() {
			n = n.child(id)
		}
		n.leaf, n.val = true, items[i]
	}
	return root, nil
}

func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendLCMap writes the children of n as a map, folding single-child
// chains into array keys.
func appendLCMap(b []byte, n *lcNode) ([]byte, error) {
	b = appendCBORHead(b, 5, uint64(len(n.kids)))
	for _, c := range n.kids {
		ids := []uint64{uint64(c.id)}
		for !c.leaf && len(c.kids) == 1 {
			c = c.kids[0]
			ids = append(ids, uint64(c.id))
		}
		if len(ids) == 1 {
			b = appendCBORHead(b, 0, ids[0])
		} else {
			b = appendCBORHead(b, 4, uint64(len(ids)))
			for _, id := range ids {
				b = appendCBORHead(b, 0, id)
			}
		}
		if !c.leaf {
			var err error
			if b, err = appendLCMap(b, c); err != nil {
				return nil, err
			}
			continue
		}
		if c.val == nil {
			b = append(b, 0xf6) // null
			continue
		}
		item, err := cborEnc.Marshal(c.val)
		if err != nil {
			return nil, fmt.Errorf("lwm2m: %s: %w", lcName, err)
		}
		b = append(b, item...)
	}
	return b, nil
}

func encodeLwM2MCBOR(_ Path, entries []Entry) ([]byte, error) {
	s := sortedEntries(entries)
	paths := make([]Path, len(s))
	items := make([]any, len(s))
	for i, e := range s {
		x, err := cborItem(e.Value)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", e.Path, err)
		}
		paths[i], items[i] = e.Path, x
	}
	root, err := lcTree(paths, items)
	if err != nil {
		return nil, err
	}
	return appendLCMap(nil, root)
}

// lcPaths encodes a path list as a map with null leaves.
func lcPaths(paths []Path) ([]byte, error) {
	s := slices.Clone(paths)
	slices.SortStableFunc(s, func(a, b Path) int {
		switch {
		case a.Less(b):
			return -1
		case b.Less(a):
			return 1
		}
		return 0
	})
	for _, p := range s {
		if p.IsRoot() {
			return nil, fmt.Errorf("lwm2m: %s: the root path cannot be a map key", lcName)
		}
	}
	root, err := lcTree(s, make([]any, len(s)))
	if err != nil {
		return nil, err
	}
	return appendLCMap(nil, root)
}
