package dm

import (
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// The API names a device's code as Leshan does (doc/server.md, "Device
// errors"): every 4.xx and 5.xx code LwM2M devices answer with.
func TestCodeNameIsLeshans(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.Content: "CONTENT", codes.Changed: "CHANGED", codes.BadRequest: "BAD_REQUEST", codes.Unauthorized: "UNAUTHORIZED",
		codes.BadOption: "BAD_OPTION", codes.Forbidden: "FORBIDDEN", codes.NotFound: "NOT_FOUND", codes.MethodNotAllowed: "METHOD_NOT_ALLOWED",
		codes.NotAcceptable: "NOT_ACCEPTABLE", codes.RequestEntityIncomplete: "REQUEST_ENTITY_INCOMPLETE", codes.Conflict: "CONFLICT",
		codes.PreconditionFailed: "PRECONDITION_FAILED", codes.RequestEntityTooLarge: "REQUEST_ENTITY_TOO_LARGE",
		codes.UnsupportedMediaType: "UNSUPPORTED_CONTENT_FORMAT", codes.InternalServerError: "INTERNAL_SERVER_ERROR",
		codes.NotImplemented: "NOT_IMPLEMENTED", codes.BadGateway: "BAD_GATEWAY", codes.ServiceUnavailable: "SERVICE_UNAVAILABLE",
		codes.GatewayTimeout: "GATEWAY_TIMEOUT",
	} {
		if got := CodeName(c); got != want {
			t.Errorf("CodeName(%v) = %q, want %q", c, got, want)
		}
	}
}
