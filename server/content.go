package server

import (
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

// responseJSON renders a device response for the HTTP API and the event
// stream: status, format, the content as sent (text, link format and JSON
// formats as they are; binary formats as base64), and the decoded values
// as "entries" when the payload decodes in its format (any format the lwm2m
// package knows, typed by the object registry).
func responseJSON(r *Response, path string) map[string]any {
	out := map[string]any{
		"status":  codeName(r.Code),
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
		entries, err := lwm2m.Decode(r.Format, base, r.Payload, objects.Default())
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
