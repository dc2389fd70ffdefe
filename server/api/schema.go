package api

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// js is a JSON object of the OpenAPI document.
type js = map[string]any

// schemas builds the JSON Schemas of the OpenAPI document from the Go
// types the handlers encode and decode, so a field added to a record
// (firmware.Image, campaign.Campaign, ...) is documented without anyone
// remembering to. Named struct types become components, referenced by
// $ref.
type schemas struct {
	defs  js                      // components/schemas
	names map[reflect.Type]string // component name of each type seen
}

func newSchemas() *schemas { return &schemas{defs: js{}, names: map[reflect.Type]string{}} }

var (
	timeType      = reflect.TypeFor[time.Time]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
	textType      = reflect.TypeFor[encoding.TextMarshaler]()
)

// named makes v's type the component name and returns a $ref to it.
func (s *schemas) named(name string, v any) js {
	t := reflect.TypeOf(v)
	s.names[t] = name
	if _, ok := s.defs[name]; !ok {
		s.defs[name] = js{} // a placeholder ends recursion
		s.defs[name] = s.object(t)
	}
	return ref(name)
}

// of is the schema of values of type t as encoding/json writes them.
func (s *schemas) of(t reflect.Type) js {
	if t == timeType {
		return js{"type": "string", "format": "date-time"}
	}
	if t.Kind() != reflect.Pointer && (t.Implements(marshalerType) || t.Implements(textType)) {
		// The type encodes itself: its zero value's encoding tells the
		// JSON type (HexBytes and lwm2m.Path are strings).
		b, err := json.Marshal(reflect.Zero(t).Interface())
		if err == nil && len(b) > 0 && b[0] == '"' {
			return js{"type": "string"}
		}
		return js{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return s.of(t.Elem())
	case reflect.Struct:
		if t.Name() == "" {
			return s.object(t)
		}
		name, ok := s.names[t]
		if !ok {
			name = t.Name()
			if _, taken := s.defs[name]; taken {
				// Two packages' Status: prefix the package's name.
				pkg := t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:]
				name = string(unicode.ToUpper(rune(pkg[0]))) + pkg[1:] + t.Name()
			}
			s.names[t] = name
			s.defs[name] = js{}
			s.defs[name] = s.object(t)
		}
		return ref(name)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return js{"type": "string", "contentEncoding": "base64"}
		}
		return js{"type": "array", "items": s.of(t.Elem())}
	case reflect.Map:
		return js{"type": "object", "additionalProperties": s.of(t.Elem())}
	case reflect.String:
		return js{"type": "string"}
	case reflect.Bool:
		return js{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return js{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return js{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return js{"type": "number"}
	}
	return js{} // any JSON value
}

// object is the schema of a struct: its JSON fields, embedded structs
// flattened as encoding/json does.
func (s *schemas) object(t reflect.Type) js {
	props := js{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = s.of(f.Type)
		}
	}
	walk(t)
	return js{"type": "object", "properties": props}
}

// ref is a reference to the component schema name.
func ref(name string) js { return js{"$ref": "#/components/schemas/" + name} }
