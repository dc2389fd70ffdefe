package lwm2m

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxID is the largest object, instance, resource or resource-instance ID.
// LwM2M Core 6.1: IDs are 16-bit; 65535 is reserved ("no instance").
const MaxID = 65534

// ErrBadPath is returned for a string that is not an LwM2M path.
var ErrBadPath = errors.New("lwm2m: bad path")

// Path addresses a node: "/" (root), /o, /o/i, /o/i/r or /o/i/r/ri.
// The zero value is the root path.
type Path struct {
	ids [4]uint16
	n   uint8 // number of IDs in use, 0..4
}

// Root is the root path "/".
var Root = Path{}

// ObjectPath returns /o.
func ObjectPath(o uint16) Path { return Path{ids: [4]uint16{o}, n: 1} }

// InstancePath returns /o/i.
func InstancePath(o, i uint16) Path { return Path{ids: [4]uint16{o, i}, n: 2} }

// ResourcePath returns /o/i/r.
func ResourcePath(o, i, r uint16) Path { return Path{ids: [4]uint16{o, i, r}, n: 3} }

// ResourceInstancePath returns /o/i/r/ri.
func ResourceInstancePath(o, i, r, ri uint16) Path {
	return Path{ids: [4]uint16{o, i, r, ri}, n: 4}
}

// ParsePath parses "/3/0/1", "3/0/1", "/3" or "/". Trailing slashes are
// tolerated; empty segments, non-numbers, IDs above MaxID and more than four
// levels are errors.
func ParsePath(s string) (Path, error) {
	s = strings.TrimPrefix(s, "/")
	s = strings.TrimSuffix(s, "/")
	var p Path
	if s == "" {
		return p, nil
	}
	for _, seg := range strings.Split(s, "/") {
		if p.n == 4 {
			return Path{}, fmt.Errorf("%w %q: more than 4 levels", ErrBadPath, s)
		}
		if seg == "" {
			return Path{}, fmt.Errorf("%w %q: empty segment", ErrBadPath, s)
		}
		v, err := strconv.ParseUint(seg, 10, 16)
		if err != nil || v > MaxID {
			return Path{}, fmt.Errorf("%w %q: segment %q is not an ID 0..%d", ErrBadPath, s, seg, MaxID)
		}
		p.ids[p.n] = uint16(v)
		p.n++
	}
	return p, nil
}

// MustParsePath is ParsePath for constants in code and tests; it panics on error.
func MustParsePath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Len is the number of IDs: 0 root, 1 object, 2 instance, 3 resource, 4 resource instance.
func (p Path) Len() int { return int(p.n) }

// IsRoot reports whether p is the root "/".
func (p Path) IsRoot() bool { return p.n == 0 }

// IsObject reports whether p is an object path /o.
func (p Path) IsObject() bool { return p.n == 1 }

// IsInstance reports whether p is an object-instance path /o/i.
func (p Path) IsInstance() bool { return p.n == 2 }

// IsResource reports whether p is a resource path /o/i/r.
func (p Path) IsResource() bool { return p.n == 3 }

// IsResourceInstance reports whether p is a resource-instance path /o/i/r/ri.
func (p Path) IsResourceInstance() bool { return p.n == 4 }

// Object returns the object ID; 0 for the root.
func (p Path) Object() uint16 { return p.ids[0] }

// Instance returns the instance ID; 0 when the path is shorter.
func (p Path) Instance() uint16 { return p.ids[1] }

// Resource returns the resource ID; 0 when the path is shorter.
func (p Path) Resource() uint16 { return p.ids[2] }

// ResourceInstance returns the resource-instance ID; 0 when the path is shorter.
func (p Path) ResourceInstance() uint16 { return p.ids[3] }

// IDs returns the IDs in use.
func (p Path) IDs() []uint16 { return append([]uint16(nil), p.ids[:p.n]...) }

// Child returns p with id appended; ok is false when p is already a
// resource-instance path.
func (p Path) Child(id uint16) (Path, bool) {
	if p.n == 4 {
		return p, false
	}
	c := p
	c.ids[c.n] = id
	c.n++
	return c, true
}

// Parent returns the path one level up (root stays root).
func (p Path) Parent() Path {
	if p.n == 0 {
		return p
	}
	q := p
	q.n--
	q.ids[q.n] = 0
	return q
}

// Contains reports whether q is p or lies below p.
func (p Path) Contains(q Path) bool {
	if q.n < p.n {
		return false
	}
	for i := uint8(0); i < p.n; i++ {
		if p.ids[i] != q.ids[i] {
			return false
		}
	}
	return true
}

// Less orders paths depth-first (as devices list them).
func (p Path) Less(q Path) bool {
	for i := uint8(0); i < p.n && i < q.n; i++ {
		if p.ids[i] != q.ids[i] {
			return p.ids[i] < q.ids[i]
		}
	}
	return p.n < q.n
}

// String renders "/3/0/1"; the root is "/".
func (p Path) String() string {
	if p.n == 0 {
		return "/"
	}
	var b strings.Builder
	for i := uint8(0); i < p.n; i++ {
		b.WriteByte('/')
		b.WriteString(strconv.FormatUint(uint64(p.ids[i]), 10))
	}
	return b.String()
}

// MarshalText lets paths be JSON strings and map keys.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses a path string.
func (p *Path) UnmarshalText(b []byte) error {
	q, err := ParsePath(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
