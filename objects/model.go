package objects

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fotastack/fota/lwm2m"
)

// Operations says what an LwM2M Server may do on a resource: the
// <Operations> field of an OMA object definition (LwM2M Core 7.x object
// tables, DDF schema): R, W, RW, E or none. Resources with no operations
// (the Security object, /0) are reachable only by a Bootstrap-Server.
type Operations uint8

// The operation sets that appear in object definitions.
const (
	NoOps Operations = 0
	R     Operations = 1 << 0
	W     Operations = 1 << 1
	RW    Operations = R | W
	E     Operations = 1 << 2
)

// ParseOperations reads a DDF <Operations> value: "", "R", "W", "RW" or "E"
// (case and surrounding space ignored).
func ParseOperations(s string) (Operations, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "":
		return NoOps, nil
	case "R":
		return R, nil
	case "W":
		return W, nil
	case "RW":
		return RW, nil
	case "E":
		return E, nil
	}
	return NoOps, fmt.Errorf("operations %q: want R, W, RW, E or empty", s)
}

// Readable reports whether the set includes Read (R).
func (o Operations) Readable() bool { return o&R != 0 }

// Writable reports whether the set includes Write (W).
func (o Operations) Writable() bool { return o&W != 0 }

// Executable reports whether the set is Execute (E).
func (o Operations) Executable() bool { return o&E != 0 }

// String renders the set as a DDF file spells it ("" for none).
func (o Operations) String() string {
	var b strings.Builder
	if o.Readable() {
		b.WriteByte('R')
	}
	if o.Writable() {
		b.WriteByte('W')
	}
	if o.Executable() {
		b.WriteByte('E')
	}
	return b.String()
}

// ObjectModel is the definition of one LwM2M object at one object version.
// Models held by a Registry are shared and must be treated as read-only.
type ObjectModel struct {
	ID           uint16
	Name         string
	Description  string
	Version      string // object version, "1.0" when the definition gives none
	LwM2MVersion string // the enabler version the object was defined for
	Multiple     bool   // more than one instance may exist
	Mandatory    bool   // every client must implement it
	URN          string
	Resources    map[uint16]*ResourceModel
}

// Resource returns the resource with the given ID.
func (o *ObjectModel) Resource(id uint16) (*ResourceModel, bool) {
	r, ok := o.Resources[id]
	return r, ok
}

// ResourceIDs returns the IDs of the defined resources in increasing order.
func (o *ObjectModel) ResourceIDs() []uint16 {
	ids := make([]uint16, 0, len(o.Resources))
	for id := range o.Resources {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (o *ObjectModel) String() string {
	return fmt.Sprintf("object %d %q v%s", o.ID, o.Name, o.Version)
}

// check verifies the invariants the registry relies on.
func (o *ObjectModel) check() error {
	if o == nil {
		return fmt.Errorf("nil object model")
	}
	if o.ID > lwm2m.MaxID {
		return fmt.Errorf("object %d: ID above %d", o.ID, lwm2m.MaxID)
	}
	if _, _, err := parseVersion(o.Version); err != nil {
		return fmt.Errorf("object %d: %w", o.ID, err)
	}
	for id, r := range o.Resources {
		if r == nil {
			return fmt.Errorf("object %d: resource %d is nil", o.ID, id)
		}
		if r.ID != id {
			return fmt.Errorf("object %d: resource stored under ID %d has ID %d", o.ID, id, r.ID)
		}
	}
	return nil
}

// ResourceModel is the definition of one resource of an object.
type ResourceModel struct {
	ID         uint16
	Name       string
	Operations Operations
	Type       lwm2m.Type // TypeNone for executable resources
	Multiple   bool       // the resource has resource instances (/o/i/r/ri)
	Mandatory  bool

	// Range is the <RangeEnumeration> text as the definition gives it.
	// Bounds, Lengths and Enum are what could be read from it; a text that
	// is prose ("The possible values are those listed in ...") gives none
	// and constrains nothing.
	Range string
	// Bounds are the allowed values of a numeric resource (Integer,
	// Unsigned Integer, Float, Time) as a union of closed intervals.
	Bounds []Interval
	// Lengths are the allowed lengths in bytes of a String, Opaque or
	// Corelnk resource, as a union of closed intervals ("0..255", "6",
	// "16,32,48").
	Lengths []Interval
	// Enum lists the allowed values of a String resource whose range is a
	// list of words.
	Enum []string

	Units       string
	Description string
}

// Readable, Writable and Executable tell the resource's operations.
func (r *ResourceModel) Readable() bool   { return r.Operations.Readable() }
func (r *ResourceModel) Writable() bool   { return r.Operations.Writable() }
func (r *ResourceModel) Executable() bool { return r.Operations.Executable() }

func (r *ResourceModel) String() string {
	m := "single"
	if r.Multiple {
		m = "multiple"
	}
	return fmt.Sprintf("resource %d %q (%s, %s, %s)", r.ID, r.Name, r.Operations, r.Type, m)
}

// parseVersion reads an object version "MAJOR.MINOR".
func parseVersion(v string) (major, minor int, err error) {
	a, b, ok := strings.Cut(v, ".")
	if !ok || a == "" || b == "" || len(v) > 11 {
		return 0, 0, fmt.Errorf("version %q: want MAJOR.MINOR", v)
	}
	for _, c := range a + b {
		if c < '0' || c > '9' {
			return 0, 0, fmt.Errorf("version %q: want MAJOR.MINOR", v)
		}
	}
	major, _ = strconv.Atoi(a) // digits only and at most 10 of them: cannot fail
	minor, _ = strconv.Atoi(b)
	return major, minor, nil
}

// compareVersions orders object versions numerically (1.10 after 1.2);
// unparseable versions sort first.
func compareVersions(x, y string) int {
	xa, xb, xerr := parseVersion(x)
	ya, yb, yerr := parseVersion(y)
	switch {
	case xerr != nil && yerr != nil:
		return strings.Compare(x, y)
	case xerr != nil:
		return -1
	case yerr != nil:
		return 1
	case xa != ya:
		return xa - ya
	}
	return xb - yb
}

// MissingMandatory returns, in increasing order, the IDs of mandatory
// resources that have no entry under instance i of this object. LwM2M Core
// lists "Mandatory Resources are not specified" among the 4.00 answers to a
// Create; it is not part of Validate because clients commonly create
// instances whose mandatory read-only resources (such as Software
// Management's Update State) are set by the client itself. Executable
// resources carry no value and are never missing.
func (o *ObjectModel) MissingMandatory(i uint16, entries []lwm2m.Entry) []uint16 {
	have := make(map[uint16]bool, len(entries))
	for _, e := range entries {
		if e.Path.Len() >= 3 && e.Path.Object() == o.ID && e.Path.Instance() == i {
			have[e.Path.Resource()] = true
		}
	}
	var missing []uint16
	for _, id := range o.ResourceIDs() {
		r := o.Resources[id]
		if r.Mandatory && !r.Executable() && !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}
