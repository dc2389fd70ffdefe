package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/dm"
)

// Problem types of the API (RFC 9457 3.1.1). Errors that need no more
// than their HTTP status are "about:blank"; the two a client may want to
// branch on have a type of their own, documented in doc/server.md under
// the anchors these URIs name.
const (
	ProblemDeviceError   = "https://github.com/fotastack/fota/blob/main/doc/server.md#device-errors"
	ProblemContentFormat = "https://github.com/fotastack/fota/blob/main/doc/server.md#content-formats"
)

// Problem is an error answer of the API: an RFC 9457 problem detail, sent
// as application/problem+json. Error repeats Detail because clients written
// before problem+json (cmd/fota, scripts) read {"error": "..."}.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Error  string `json:"error"`

	// DeviceCode and DeviceStatus are the CoAP code a device answered
	// with ("4.04", "NOT_FOUND"), Path the LwM2M path asked (device errors).
	DeviceCode   string `json:"deviceCode,omitempty"`
	DeviceStatus string `json:"deviceStatus,omitempty"`
	Path         string `json:"path,omitempty"`
	// Formats are the content formats the device takes for the path
	// (unsupported content format).
	Formats []string `json:"formats,omitempty"`
}

// writeProblem sends p; Status, Title and Error are filled in when empty.
func writeProblem(w http.ResponseWriter, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		// RFC 9457 4.2.1: with about:blank, the title is the status phrase.
		p.Title = http.StatusText(p.Status)
	}
	p.Error = p.Detail
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// httpError answers with an about:blank problem. msg is its detail: say
// what failed and what the caller can do about it.
func httpError(w http.ResponseWriter, code int, msg string) {
	writeProblem(w, Problem{Status: code, Detail: msg})
}

// deviceStatus is the HTTP status for a device's error answer. The device
// is the origin of the resource, so its 4.xx keep their meaning where HTTP
// has the same code; 4.01 becomes 403 because a 401 would tell the API
// client its own token was wrong; 5.xx are the device's failures, a
// gateway's 502 for the API client (RFC 8075 7: HTTP-CoAP mapping).
func deviceStatus(c codes.Code) int {
	switch c {
	case codes.BadRequest, codes.BadOption, codes.RequestEntityIncomplete:
		return http.StatusBadRequest
	case codes.Unauthorized, codes.Forbidden:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case codes.NotAcceptable:
		return http.StatusNotAcceptable
	case codes.Conflict:
		return http.StatusConflict
	case codes.PreconditionFailed:
		return http.StatusPreconditionFailed
	case codes.RequestEntityTooLarge:
		return http.StatusRequestEntityTooLarge
	case codes.UnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	}
	if c>>5 == 4 {
		return http.StatusBadRequest
	}
	return http.StatusBadGateway
}

// deviceHints tell, per device code, what the API client can do next.
var deviceHints = map[codes.Code]string{
	codes.BadRequest:            "check the path, the query and the body against the object model",
	codes.Unauthorized:          "the device's Access Control object does not grant this server the operation",
	codes.Forbidden:             "the device's Access Control object does not grant this server the operation",
	codes.NotFound:              "the object, instance or resource does not exist on the device: Discover (GET .../discover) lists what it has",
	codes.MethodNotAllowed:      "the device does not allow this operation on this path (a read-only, write-only or executable resource, a single-instance object): Discover (GET .../discover) shows what the path offers",
	codes.NotAcceptable:         "the device cannot answer in the format asked for: try another ?format= or none",
	codes.UnsupportedMediaType:  "send the body in a format the device announced, or as application/json to let the server encode it",
	codes.RequestEntityTooLarge: "send a smaller body",
}

// deviceProblem answers with the error a device gave to method on path
// (a 4.xx or 5.xx code).
func deviceProblem(w http.ResponseWriter, ep, method, path string, resp *dm.Response) {
	status := deviceStatus(resp.Code)
	detail := "device " + quote(ep) + " answered " + method + " " + path + " with " + dotted(resp.Code) + " " + dm.CodeName(resp.Code)
	if len(resp.Payload) > 0 && len(resp.Payload) <= 256 && (!resp.HasFmt || resp.Format == lwm2m.FormatText) {
		// LwM2M devices may put a diagnostic text in an error's payload.
		detail += " (" + strings.TrimSpace(string(resp.Payload)) + ")"
	}
	if h, ok := deviceHints[resp.Code]; ok {
		detail += ": " + h
	} else if resp.Code>>5 == 5 {
		detail += ": the device failed; try again later or look at the device's logs"
	}
	if status == http.StatusMethodNotAllowed {
		// RFC 9110 15.5.6: a 405 carries Allow. What the device allows on
		// the path is not known; these are the methods of the route.
		w.Header().Set("Allow", "GET, PUT, POST, DELETE")
	}
	writeProblem(w, Problem{
		Type: ProblemDeviceError, Title: "The device answered with an error", Status: status, Detail: detail,
		DeviceCode: dotted(resp.Code), DeviceStatus: dm.CodeName(resp.Code), Path: path,
	})
}

// dotted is a CoAP code as RFC 7252 and LwM2M write it: "4.04".
func dotted(c codes.Code) string { return fmt.Sprintf("%d.%02d", c>>5, c&0x1f) }

// quote renders a name for a message: in double quotes, escaped.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
