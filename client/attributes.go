package client

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Attributes are the notification attributes of one path (LwM2M Core
// 5.1.2): minimum and maximum period in seconds, greater-than, less-than
// and step. A nil field is unset and inherits from the level above.
type Attributes struct {
	Pmin, Pmax *int64
	Gt, Lt, St *float64
}

// merge overlays the set fields of b on a.
func (a Attributes) merge(b Attributes) Attributes {
	if b.Pmin != nil {
		a.Pmin = b.Pmin
	}
	if b.Pmax != nil {
		a.Pmax = b.Pmax
	}
	if b.Gt != nil {
		a.Gt = b.Gt
	}
	if b.Lt != nil {
		a.Lt = b.Lt
	}
	if b.St != nil {
		a.St = b.St
	}
	return a
}

func (a Attributes) empty() bool {
	return a.Pmin == nil && a.Pmax == nil && a.Gt == nil && a.Lt == nil && a.St == nil
}

// link renders the attributes as link-format parameters (";pmin=10...").
func (a Attributes) link() string {
	var b strings.Builder
	if a.Pmin != nil {
		b.WriteString(";pmin=" + strconv.FormatInt(*a.Pmin, 10))
	}
	if a.Pmax != nil {
		b.WriteString(";pmax=" + strconv.FormatInt(*a.Pmax, 10))
	}
	if a.Gt != nil {
		b.WriteString(";gt=" + strconv.FormatFloat(*a.Gt, 'g', -1, 64))
	}
	if a.Lt != nil {
		b.WriteString(";lt=" + strconv.FormatFloat(*a.Lt, 'g', -1, 64))
	}
	if a.St != nil {
		b.WriteString(";st=" + strconv.FormatFloat(*a.St, 'g', -1, 64))
	}
	return b.String()
}

// attrUpdate is one parsed Write-Attributes query: set values, and names
// given without a value, which clear the attribute (LwM2M Core 5.4.4).
type attrUpdate struct {
	set   Attributes
	clear map[string]bool
}

// parseAttributes reads the query of a Write-Attributes request.
func parseAttributes(qs []string) (attrUpdate, error) {
	u := attrUpdate{clear: map[string]bool{}}
	for _, q := range qs {
		name, val, hasVal := strings.Cut(q, "=")
		switch name {
		case "pmin", "pmax", "gt", "lt", "st":
		case "epmin", "epmax", "edge", "con", "hqmax":
			// LwM2M 1.2 attributes we do not implement yet.
			return u, fmt.Errorf("attribute %q is not supported: %w", name, ErrBadRequest)
		default:
			return u, fmt.Errorf("unknown attribute %q: %w", name, ErrBadRequest)
		}
		if !hasVal {
			u.clear[name] = true
			continue
		}
		switch name {
		case "pmin", "pmax":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return u, fmt.Errorf("attribute %s=%q: want seconds >= 0: %w", name, val, ErrBadRequest)
			}
			if name == "pmin" {
				u.set.Pmin = &n
			} else {
				u.set.Pmax = &n
			}
		default:
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return u, fmt.Errorf("attribute %s=%q: want a number: %w", name, val, ErrBadRequest)
			}
			switch name {
			case "gt":
				u.set.Gt = &f
			case "lt":
				u.set.Lt = &f
			case "st":
				if f <= 0 {
					return u, fmt.Errorf("attribute st=%q: want a positive step: %w", val, ErrBadRequest)
				}
				u.set.St = &f
			}
		}
	}
	return u, nil
}

// serveWriteAttributes stores attributes on an object, instance or
// resource (LwM2M Core 5.4.4).
func (c *Client) serveWriteAttributes(req *request, qs []string) {
	p := req.path
	if p.IsRoot() || p.IsResourceInstance() {
		c.fail(req, fmt.Errorf("write-attributes %v: %w", p, ErrNotAllowed))
		return
	}
	if err := c.exists(p); err != nil {
		c.fail(req, err)
		return
	}
	u, err := parseAttributes(qs)
	if err != nil {
		c.fail(req, err)
		return
	}
	// LwM2M Core 5.1.2: gt, lt and st apply to numeric single resources only.
	if u.set.Gt != nil || u.set.Lt != nil || u.set.St != nil {
		t, _ := c.ResourceType(p)
		if !p.IsResource() || !numeric(t) {
			c.fail(req, fmt.Errorf("write-attributes %v: gt/lt/st need a numeric resource: %w", p, ErrBadRequest))
			return
		}
	}
	c.mu.Lock()
	a := c.attrs[p].merge(u.set)
	for name := range u.clear {
		switch name {
		case "pmin":
			a.Pmin = nil
		case "pmax":
			a.Pmax = nil
		case "gt":
			a.Gt = nil
		case "lt":
			a.Lt = nil
		case "st":
			a.St = nil
		}
	}
	// LwM2M Core 5.1.2: lt < gt, and lt + 2*st < gt when all three are set.
	if a.Gt != nil && a.Lt != nil && (*a.Lt >= *a.Gt || (a.St != nil && *a.Lt+2**a.St >= *a.Gt)) {
		c.mu.Unlock()
		c.fail(req, fmt.Errorf("write-attributes %v: want lt < gt and lt+2*st < gt: %w", p, ErrBadRequest))
		return
	}
	if a.empty() {
		delete(c.attrs, p)
	} else {
		c.attrs[p] = a
	}
	c.mu.Unlock()
	c.respond(req, codes.Changed, message.TextPlain, nil)
	c.pokeObservations(p)
}

// AttributesOf returns the attributes written on exactly p.
func (c *Client) AttributesOf(p lwm2m.Path) Attributes {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attrs[p]
}

// effectiveAttributes merges the Server object's default periods and the
// attributes on /o, /o/i and /o/i/r for p (LwM2M Core 5.1.2: the deeper
// level wins).
func (c *Client) effectiveAttributes(p lwm2m.Path) (pmin, pmax time.Duration, a Attributes) {
	if srv := c.SimpleObject(1); srv != nil {
		if v, ok := srv.Get(lwm2m.ResourcePath(1, 0, SrvDefaultPmin)); ok {
			n := v.Int()
			a.Pmin = &n
		}
		if v, ok := srv.Get(lwm2m.ResourcePath(1, 0, SrvDefaultPmax)); ok {
			n := v.Int()
			a.Pmax = &n
		}
	}
	ids := p.IDs()
	c.mu.Lock()
	q := lwm2m.Root
	for _, id := range ids {
		q, _ = q.Child(id)
		a = a.merge(c.attrs[q])
	}
	c.mu.Unlock()
	if a.Pmin != nil {
		pmin = time.Duration(*a.Pmin) * time.Second
	}
	if a.Pmax != nil {
		pmax = time.Duration(*a.Pmax) * time.Second
	}
	return pmin, pmax, a
}

// exists checks that p names an existing object, instance or resource.
func (c *Client) exists(p lwm2m.Path) error {
	o := c.Object(p.Object())
	if o == nil {
		return notFound(p)
	}
	if p.IsObject() {
		return nil
	}
	defs, err := o.Resources(p.Instance())
	if err != nil {
		return err
	}
	if p.IsInstance() {
		return nil
	}
	for _, d := range defs {
		if d.ID == p.Resource() {
			return nil
		}
	}
	return notFound(p)
}

func numeric(t lwm2m.Type) bool {
	return t == lwm2m.TypeInteger || t == lwm2m.TypeUnsignedInteger || t == lwm2m.TypeFloat
}
