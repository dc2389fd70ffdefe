package client

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Attributes are the notification attributes of one path (LwM2M Core
// 5.1.2, Table "<NOTIFICATION> class Attributes"): minimum and maximum
// period in seconds, greater-than, less-than and step (1.0); minimum and
// maximum evaluation period in seconds (1.1); edge, confirmable
// notification and maximum historical queue (1.2). A nil field is unset
// and inherits from the level above.
type Attributes struct {
	Pmin, Pmax   *int64
	Gt, Lt, St   *float64
	Epmin, Epmax *int64
	// Edge is 0 (falling edge: notify when a boolean goes true to false)
	// or 1 (rising edge: false to true).
	Edge *int64
	// Con is 0 (non-confirmable notifications) or 1 (confirmable).
	Con *int64
	// Hqmax is the number of notifications kept while the device cannot
	// send them (asleep in queue mode, or offline).
	Hqmax *int64
}

// maxPeriod bounds the period attributes (seconds), as the lwm2m package
// does: a time.Duration holds it without overflow.
const maxPeriod = 1<<31 - 1

// MaxHistoricalQueue is the largest hqmax the client accepts: each entry
// holds one reading of the observed paths in memory.
const MaxHistoricalQueue = 1024

// merge overlays the set fields of b on a.
func (a Attributes) merge(b Attributes) Attributes {
	for _, f := range []struct{ dst, src **int64 }{
		{&a.Pmin, &b.Pmin}, {&a.Pmax, &b.Pmax}, {&a.Epmin, &b.Epmin}, {&a.Epmax, &b.Epmax},
		{&a.Edge, &b.Edge}, {&a.Con, &b.Con}, {&a.Hqmax, &b.Hqmax},
	} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
	for _, f := range []struct{ dst, src **float64 }{{&a.Gt, &b.Gt}, {&a.Lt, &b.Lt}, {&a.St, &b.St}} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
	return a
}

func (a Attributes) empty() bool { return a == Attributes{} }

// link renders the attributes as link-format parameters (";pmin=10...").
func (a Attributes) link() string {
	var b strings.Builder
	ints := func(name string, v *int64) {
		if v != nil {
			b.WriteString(";" + name + "=" + strconv.FormatInt(*v, 10))
		}
	}
	floats := func(name string, v *float64) {
		if v != nil {
			b.WriteString(";" + name + "=" + strconv.FormatFloat(*v, 'g', -1, 64))
		}
	}
	ints("pmin", a.Pmin)
	ints("pmax", a.Pmax)
	floats("gt", a.Gt)
	floats("lt", a.Lt)
	floats("st", a.St)
	ints("epmin", a.Epmin)
	ints("epmax", a.Epmax)
	ints("edge", a.Edge)
	ints("con", a.Con)
	ints("hqmax", a.Hqmax)
	return b.String()
}

// clear unsets the attribute called name.
func (a *Attributes) clear(name string) {
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
	case "epmin":
		a.Epmin = nil
	case "epmax":
		a.Epmax = nil
	case "edge":
		a.Edge = nil
	case "con":
		a.Con = nil
	case "hqmax":
		a.Hqmax = nil
	}
}

// attrUpdate is one parsed Write-Attributes query: set values, and names
// given without a value, which clear the attribute (LwM2M Core 5.4.4).
type attrUpdate struct {
	set   Attributes
	clear map[string]bool
}

// parseAttributes reads the query of a Write-Attributes request. It
// checks each value on its own; the rules between attributes (lt < gt,
// epmin < epmax) and the resource types gt/lt/st and edge need are
// checked by serveWriteAttributes.
func parseAttributes(qs []string) (attrUpdate, error) {
	u := attrUpdate{clear: map[string]bool{}}
	for _, q := range qs {
		name, val, hasVal := strings.Cut(q, "=")
		switch name {
		case "pmin", "pmax", "gt", "lt", "st", "epmin", "epmax", "edge", "con", "hqmax":
		default:
			return u, fmt.Errorf("unknown attribute %q: %w", name, ErrBadRequest)
		}
		if !hasVal {
			u.clear[name] = true
			continue
		}
		switch name {
		case "pmin", "pmax", "epmin", "epmax", "edge", "con", "hqmax":
			limit, want := int64(maxPeriod), "seconds 0.."+strconv.Itoa(maxPeriod)
			switch name {
			case "edge", "con":
				limit, want = 1, "0 or 1"
			case "hqmax":
				limit, want = MaxHistoricalQueue, "0.."+strconv.Itoa(MaxHistoricalQueue)
			}
			// 1*DIGIT in the Core TS ABNF: no sign, no spaces.
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || val == "" || val[0] < '0' || val[0] > '9' || n > limit {
				return u, fmt.Errorf("attribute %s=%q: want %s: %w", name, val, want, ErrBadRequest)
			}
			switch name {
			case "pmin":
				u.set.Pmin = &n
			case "pmax":
				u.set.Pmax = &n
			case "epmin":
				u.set.Epmin = &n
			case "epmax":
				u.set.Epmax = &n
			case "edge":
				u.set.Edge = &n
			case "con":
				u.set.Con = &n
			case "hqmax":
				u.set.Hqmax = &n
			}
		default:
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
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
	// LwM2M Core 5.1.2: gt, lt and st apply to numeric single resources
	// only, edge (1.2) to boolean ones; all four are set at the resource
	// level.
	if u.set.Gt != nil || u.set.Lt != nil || u.set.St != nil {
		t, _ := c.ResourceType(p)
		if !p.IsResource() || !numeric(t) {
			c.fail(req, fmt.Errorf("write-attributes %v: gt/lt/st need a numeric resource: %w", p, ErrBadRequest))
			return
		}
	}
	if u.set.Edge != nil {
		t, _ := c.ResourceType(p)
		if !p.IsResource() || t != lwm2m.TypeBoolean {
			c.fail(req, fmt.Errorf("write-attributes %v: edge needs a boolean resource: %w", p, ErrBadRequest))
			return
		}
	}
	c.mu.Lock()
	a := c.attrs[p].merge(u.set)
	for name := range u.clear {
		a.clear(name)
	}
	// LwM2M Core 5.1.2: lt < gt, and lt + 2*st < gt when all three are set.
	if a.Gt != nil && a.Lt != nil && (*a.Lt >= *a.Gt || (a.St != nil && *a.Lt+2**a.St >= *a.Gt)) {
		c.mu.Unlock()
		c.fail(req, fmt.Errorf("write-attributes %v: want lt < gt and lt+2*st < gt: %w", p, ErrBadRequest))
		return
	}
	// LwM2M Core 5.1.2: "If both the epmin and epmax attributes are
	// defined, the epmin value must be less than the epmax value." An
	// epmax of 0 is no maximum (as pmax=0 is), so it bounds nothing.
	if a.Epmin != nil && a.Epmax != nil && *a.Epmax > 0 && *a.Epmin >= *a.Epmax {
		c.mu.Unlock()
		c.fail(req, fmt.Errorf("write-attributes %v: want epmin < epmax: %w", p, ErrBadRequest))
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
	return seconds(a.Pmin), seconds(a.Pmax), a
}

// seconds turns a period attribute into a duration; 0 when unset.
func seconds(v *int64) time.Duration {
	if v == nil {
		return 0
	}
	return time.Duration(min(max(*v, 0), maxPeriod)) * time.Second
}

// notificationStoring reports the Server object's "Notification Storing
// When Disabled or Offline" (resource 6); true when it is not set.
func (c *Client) notificationStoring() bool {
	if srv := c.SimpleObject(1); srv != nil {
		if v, ok := srv.Get(lwm2m.ResourcePath(1, 0, SrvNotificationStore)); ok {
			return v.Bool()
		}
	}
	return true
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
