package server

import (
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"

	"github.com/fotastack/fota/lwm2m"
)

// responseJSON renders a device response for the HTTP API and the event
// stream: status, format and the content. Text, link format and JSON
// formats are shown as they are; binary formats (TLV, CBOR, opaque) as
// base64 with their format, for the caller to decode.
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
	return out
}
