package dm

import (
	"strings"

	"encoding/base64"
	"encoding/json"
	"unicode"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/server/transport"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

// ResponseJSON renders a device response for the HTTP API and the event
// stream: status, format, the content as sent (text, link format and JSON
// formats as they are; binary formats as base64), and the decoded values
// as "entries" when the payload decodes in its format (any format the lwm2m
// package knows, typed by the object registry).
func ResponseJSON(r *Response, path string) map[string]any {
	out := map[string]any{
		"status":  CodeName(r.Code),
		"code":    r.Code.String(),
		"success": r.Success(),
		"path":    path,
	}
	if !r.HasFmt && len(r.Payload) == 0 {
		return out
	}
	out["format"] = r.Format.String()
	out["contentFormat"] = uint16(r.Format)
	switch {
	case r.HasFmt && (r.Format == lwm2m.FormatSenMLJSON || r.Format == lwm2m.FormatLwM2MJSON) && json.Valid(r.Payload):
		out["content"] = json.RawMessage(r.Payload)
	case (!r.HasFmt || r.Format == lwm2m.FormatText || r.Format == lwm2m.FormatLinkFormat) && utf8.Valid(r.Payload):
		out["content"] = string(r.Payload)
	default:
		out["payload"] = base64.StdEncoding.EncodeToString(r.Payload)
	}
	if r.HasFmt && r.Format != lwm2m.FormatLinkFormat && len(r.Payload) > 0 {
		base, err := lwm2m.ParsePath(path)
		if err != nil {
			base = lwm2m.Path{}
		}
		entries, err := lwm2m.Decode(r.Format, base, r.Payload, models)
		if err != nil {
			out["decodeError"] = err.Error()
		} else {
			out["entries"] = entriesJSON(entries)
		}
	}
	return out
}

// entriesJSON renders decoded values with their JSON-native types.
func entriesJSON(entries []lwm2m.Entry) []map[string]any {
	out := make([]map[string]any, 0, len(entries))
	for _, e := range entries {
		v := e.Value
		var val any
		switch v.Type() {
		case lwm2m.TypeString, lwm2m.TypeCoreLnk:
			val = v.Str()
		case lwm2m.TypeInteger:
			val = v.Int()
		case lwm2m.TypeUnsignedInteger:
			val = v.Uint()
		case lwm2m.TypeFloat:
			val = v.Float()
		case lwm2m.TypeBoolean:
			val = v.Bool()
		case lwm2m.TypeOpaque:
			val = v.Bytes() // base64 in JSON
		case lwm2m.TypeTime:
			val = v.Time()
		default:
			val = v.Text()
		}
		out = append(out, map[string]any{"path": e.Path.String(), "type": v.Type().String(), "value": val})
	}
	return out
}

// ClientJSON is a registration in the shape of Leshan's demo API, plus the
// security of the session: the API's client list and the REGISTRATION and
// UPDATED events show it.
func ClientJSON(d *Device) map[string]any {
	reg := d.Registration()
	return map[string]any{
		"endpoint":         reg.Endpoint,
		"registrationId":   reg.ID,
		"registrationDate": reg.Created,
		"lastUpdate":       reg.Updated,
		"lifetime":         reg.Lifetime,
		"lwM2mVersion":     reg.Version,
		"bindingMode":      reg.Binding,
		"queueMode":        reg.Queue,
		"smsNumber":        reg.SMS,
		"address":          reg.Address,
		"transport":        reg.Transport,
		"secure":           reg.Security != transport.SecurityNone,
		"security":         reg.Security,
		"identity":         reg.Identity,
		"objectLinks":      reg.Links,
		"expires":          reg.Expires(),
		"preferredFormat":  d.BestFormat().String(),
	}
}

// CodeName is Leshan's response status name for a CoAP code.
func CodeName(c codes.Code) string {
	switch c {
	case codes.Created:
		return "CREATED"
	case codes.Deleted:
		return "DELETED"
	case codes.Valid:
		return "VALID"
	case codes.Changed:
		return "CHANGED"
	case codes.Content:
		return "CONTENT"
	case codes.BadRequest:
		return "BAD_REQUEST"
	case codes.Unauthorized:
		return "UNAUTHORIZED"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.MethodNotAllowed:
		return "METHOD_NOT_ALLOWED"
	case codes.NotAcceptable:
		return "NOT_ACCEPTABLE"
	case codes.UnsupportedMediaType:
		return "UNSUPPORTED_CONTENT_FORMAT"
	case codes.RequestEntityIncomplete: // RFC 7959 2.9.2; go-coap has no name for it
		return "REQUEST_ENTITY_INCOMPLETE"
	case codes.InternalServerError:
		return "INTERNAL_SERVER_ERROR"
	}
	// go-coap's names are CamelCase ("RequestEntityTooLarge"); Leshan's
	// are the same words in upper snake case (REQUEST_ENTITY_TOO_LARGE).
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// models types decoded values. One registry for the process: objects.Default
// builds a new one at each call, too much for every notification; this one
// is only read.
var models = objects.Default()
