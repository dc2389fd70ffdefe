package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

// apiNode is a node of the HTTP API's write and create bodies, in the shape
// of Leshan's demo API:
//
//	{"id":1,"kind":"singleResource","value":300,"type":"integer"}
//	{"id":6,"kind":"multiResource","values":{"0":1,"1":5},"type":"integer"}
//	{"id":0,"kind":"instance","resources":[{...},{...}]}
type apiNode struct {
	ID        *uint16                    `json:"id"`
	Kind      string                     `json:"kind"`
	Type      string                     `json:"type"`
	Value     json.RawMessage            `json:"value"`
	Values    map[string]json.RawMessage `json:"values"`
	Resources []apiNode                  `json:"resources"`
}

// maxNodeEntries bounds the values of one API body.
const maxNodeEntries = 4096

// nodeEntries turns an API node written at base into LwM2M entries, typed by
// the node's "type" or else by the object registry.
func nodeEntries(base lwm2m.Path, n apiNode) ([]lwm2m.Entry, error) {
	var out []lwm2m.Entry
	var walk func(p lwm2m.Path, n apiNode, depth int) error
	walk = func(p lwm2m.Path, n apiNode, depth int) error {
		if depth > 2 {
			return errors.New("node nested too deep")
		}
		switch n.Kind {
		case "instance":
			ip := p
			if p.IsObject() {
				if n.ID == nil {
					return errors.New(`instance node needs "id" when written to an object`)
				}
				ip = lwm2m.InstancePath(p.Object(), *n.ID)
			}
			if !ip.IsInstance() {
				return fmt.Errorf("instance node at %v", p)
			}
			for _, r := range n.Resources {
				if r.ID == nil {
					return errors.New(`resource node without "id"`)
				}
				rp := lwm2m.ResourcePath(ip.Object(), ip.Instance(), *r.ID)
				if err := walk(rp, r, depth+1); err != nil {
					return err
				}
			}
		case "singleResource", "resource", "":
			rp := p
			if p.IsInstance() && n.ID != nil {
				rp = lwm2m.ResourcePath(p.Object(), p.Instance(), *n.ID)
			}
			if !rp.IsResource() && !rp.IsResourceInstance() {
				return fmt.Errorf("resource node at %v", p)
			}
			v, err := nodeValue(rp, n.Type, n.Value)
			if err != nil {
				return err
			}
			out = append(out, lwm2m.Entry{Path: rp, Value: v})
		case "multiResource":
			rp := p
			if p.IsInstance() && n.ID != nil {
				rp = lwm2m.ResourcePath(p.Object(), p.Instance(), *n.ID)
			}
			if !rp.IsResource() {
				return fmt.Errorf("multiResource node at %v", p)
			}
			for k, raw := range n.Values {
				id, err := strconv.ParseUint(k, 10, 16)
				if err != nil {
					return fmt.Errorf("resource instance id %q", k)
				}
				rip := lwm2m.ResourceInstancePath(rp.Object(), rp.Instance(), rp.Resource(), uint16(id))
				v, err := nodeValue(rp, n.Type, raw)
				if err != nil {
					return err
				}
				out = append(out, lwm2m.Entry{Path: rip, Value: v})
			}
		default:
			return fmt.Errorf("unknown node kind %q", n.Kind)
		}
		if len(out) > maxNodeEntries {
			return fmt.Errorf("more than %d values", maxNodeEntries)
		}
		return nil
	}
	if err := walk(base, n, 0); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b lwm2m.Entry) int {
		switch {
		case a.Path.Less(b.Path):
			return -1
		case b.Path.Less(a.Path):
			return 1
		}
		return 0
	})
	return out, nil
}

// nodeValue converts a JSON value to the resource's type: the node's
// "type", else the registry's, else what the JSON suggests.
func nodeValue(rp lwm2m.Path, typ string, raw json.RawMessage) (lwm2m.Value, error) {
	if len(raw) == 0 {
		return lwm2m.Value{}, fmt.Errorf("%v: no value", rp)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return lwm2m.Value{}, fmt.Errorf("%v: %w", rp, err)
	}
	t := lwm2m.TypeNone
	if typ != "" {
		pt, err := lwm2m.ParseType(typ)
		if err != nil {
			return lwm2m.Value{}, fmt.Errorf("%v: %w", rp, err)
		}
		t = pt
	} else if rt, ok := models.ResourceType(lwm2m.ResourcePath(rp.Object(), rp.Instance(), rp.Resource())); ok {
		t = rt
	}
	var text string
	switch x := v.(type) {
	case string:
		text = x
		if t == lwm2m.TypeNone {
			t = lwm2m.TypeString
		}
	case float64:
		text = strconv.FormatFloat(x, 'f', -1, 64)
		if t == lwm2m.TypeNone {
			t = lwm2m.TypeFloat
			if x == float64(int64(x)) {
				t = lwm2m.TypeInteger
			}
		}
	case bool:
		text = "0"
		if x {
			text = "1"
		}
		if t == lwm2m.TypeNone {
			t = lwm2m.TypeBoolean
		}
	default:
		return lwm2m.Value{}, fmt.Errorf("%v: value must be a string, number or boolean", rp)
	}
	if t == lwm2m.TypeOpaque {
		return lwm2m.Opaque([]byte(text)), nil
	}
	val, err := lwm2m.ParseText(t, text)
	if err != nil {
		return lwm2m.Value{}, fmt.Errorf("%v: %w", rp, err)
	}
	return val, nil
}

// models types the values of JSON nodes (read only, built once).
var models = objects.Default()
