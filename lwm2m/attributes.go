package lwm2m

import (
	"fmt"
	"strconv"
	"strings"
)

// Attributes are the LwM2M attributes of an object, instance or resource
// (LwM2M Core 5.1.2 "Attributes", Table 5.1.2-1): notification attributes
// set by Write-Attributes and reported by Discover, and the "dim" and "ver"
// properties. nil means unset.
type Attributes struct {
	Pmin, Pmax   *int64   // minimum / maximum period, seconds
	Gt, Lt, St   *float64 // greater than, less than, step
	Epmin, Epmax *int64   // minimum / maximum evaluation period, seconds
	Dim          *int64   // number of instances of a multiple resource, 0..255
	Ver          string   // object version, "1.1"
}

// Set parses one attribute as written in link format or in a
// Write-Attributes query ("pmin", "10"). Unknown keys are ignored (ok
// false) so later LwM2M versions' attributes pass through.
func (a *Attributes) Set(key, value string) (ok bool, err error) {
	intAttr := func(dst **int64, max int64) error {
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil || v < 0 || v > max {
			return fmt.Errorf("%w: attribute %s=%q: want an integer 0..%d", ErrLinkFormat, key, value, max)
		}
		*dst = &v
		return nil
	}
	floatAttr := func(dst **float64) error {
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("%w: attribute %s=%q: want a number", ErrLinkFormat, key, value)
		}
		*dst = &v
		return nil
	}
	switch key {
	case "pmin":
		return true, intAttr(&a.Pmin, 1<<31-1)
	case "pmax":
		return true, intAttr(&a.Pmax, 1<<31-1)
	case "epmin":
		return true, intAttr(&a.Epmin, 1<<31-1)
	case "epmax":
		return true, intAttr(&a.Epmax, 1<<31-1)
	case "dim":
		return true, intAttr(&a.Dim, 255)
	case "gt":
		return true, floatAttr(&a.Gt)
	case "lt":
		return true, floatAttr(&a.Lt)
	case "st":
		return true, floatAttr(&a.St)
	case "ver":
		if maj, min, found := strings.Cut(value, "."); !found || !isDigits(maj) || !isDigits(min) {
			return true, fmt.Errorf("%w: attribute ver=%q: want MAJOR.MINOR", ErrLinkFormat, value)
		}
		a.Ver = value
		return true, nil
	}
	return false, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// AttributesOf reads the LwM2M attributes of a link (a Discover answer).
func AttributesOf(l WebLink) (Attributes, error) {
	var a Attributes
	for _, p := range l.Attrs {
		if _, err := a.Set(p.Key, p.Value); err != nil {
			return Attributes{}, fmt.Errorf("link <%s>: %w", l.Target, err)
		}
	}
	return a, nil
}

// LinkAttrs returns the set attributes in the order LwM2M Core's Discover
// examples list them.
func (a Attributes) LinkAttrs() []LinkAttr {
	var out []LinkAttr
	if a.Ver != "" {
		out = append(out, LinkAttr{Key: "ver", Value: a.Ver})
	}
	if a.Dim != nil {
		out = append(out, LinkAttr{Key: "dim", Value: strconv.FormatInt(*a.Dim, 10)})
	}
	ints := []struct {
		k string
		v *int64
	}{{"pmin", a.Pmin}, {"pmax", a.Pmax}}
	for _, i := range ints {
		if i.v != nil {
			out = append(out, LinkAttr{Key: i.k, Value: strconv.FormatInt(*i.v, 10)})
		}
	}
	floats := []struct {
		k string
		v *float64
	}{{"gt", a.Gt}, {"lt", a.Lt}, {"st", a.St}}
	for _, f := range floats {
		if f.v != nil {
			out = append(out, LinkAttr{Key: f.k, Value: strconv.FormatFloat(*f.v, 'g', -1, 64)})
		}
	}
	ints = []struct {
		k string
		v *int64
	}{{"epmin", a.Epmin}, {"epmax", a.Epmax}}
	for _, i := range ints {
		if i.v != nil {
			out = append(out, LinkAttr{Key: i.k, Value: strconv.FormatInt(*i.v, 10)})
		}
	}
	return out
}
