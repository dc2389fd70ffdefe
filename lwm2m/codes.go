package lwm2m

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// The CoAP response codes LwM2M uses (LwM2M Core 6 and Appendix E: "2.05
// Content" for a Read, "4.04 Not Found" for a missing object...). They are
// go-coap's codes, so servers and clients pass them straight to go-coap.
const (
	CodeCreated                 = codes.Created                 // 2.01
	CodeDeleted                 = codes.Deleted                 // 2.02
	CodeValid                   = codes.Valid                   // 2.03
	CodeChanged                 = codes.Changed                 // 2.04
	CodeContent                 = codes.Content                 // 2.05
	CodeContinue                = codes.Continue                // 2.31 (block-wise, RFC 7959)
	CodeBadRequest              = codes.BadRequest              // 4.00
	CodeUnauthorized            = codes.Unauthorized            // 4.01
	CodeBadOption               = codes.BadOption               // 4.02
	CodeForbidden               = codes.Forbidden               // 4.03
	CodeNotFound                = codes.NotFound                // 4.04
	CodeMethodNotAllowed        = codes.MethodNotAllowed        // 4.05
	CodeNotAcceptable           = codes.NotAcceptable           // 4.06
	CodeRequestEntityIncomplete = codes.RequestEntityIncomplete // 4.08
	CodePreconditionFailed      = codes.PreconditionFailed      // 4.12
	CodeRequestEntityTooLarge   = codes.RequestEntityTooLarge   // 4.13
	CodeUnsupportedMediaType    = codes.UnsupportedMediaType    // 4.15
	CodeInternalServerError     = codes.InternalServerError     // 5.00
	CodeNotImplemented          = codes.NotImplemented          // 5.01
	CodeServiceUnavailable      = codes.ServiceUnavailable      // 5.03
)

// Error is an LwM2M operation failure carrying the CoAP response code that
// reports it. errors.Is(err, ErrNotFound) holds for every *Error with code
// 4.04, whatever its message.
type Error struct {
	Code codes.Code
	Msg  string
}

// Error renders "4.04 Not Found: msg".
func (e *Error) Error() string {
	s := CodeString(e.Code)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is matches another *Error with the same code, so the sentinels below work
// with errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors, one per code LwM2M operations fail with. Compare with
// errors.Is; build specific ones with NewError.
var (
	ErrBadRequest              = &Error{Code: CodeBadRequest}
	ErrUnauthorized            = &Error{Code: CodeUnauthorized}
	ErrBadOption               = &Error{Code: CodeBadOption}
	ErrForbidden               = &Error{Code: CodeForbidden}
	ErrNotFound                = &Error{Code: CodeNotFound}
	ErrMethodNotAllowed        = &Error{Code: CodeMethodNotAllowed}
	ErrNotAcceptable           = &Error{Code: CodeNotAcceptable}
	ErrRequestEntityIncomplete = &Error{Code: CodeRequestEntityIncomplete}
	ErrPreconditionFailed      = &Error{Code: CodePreconditionFailed}
	ErrRequestEntityTooLarge   = &Error{Code: CodeRequestEntityTooLarge}
	ErrUnsupportedMediaType    = &Error{Code: CodeUnsupportedMediaType}
	ErrInternal                = &Error{Code: CodeInternalServerError}
	ErrNotImplemented          = &Error{Code: CodeNotImplemented}
	ErrServiceUnavailable      = &Error{Code: CodeServiceUnavailable}
)

// NewError builds an *Error with a formatted message.
func NewError(code codes.Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeString renders a code as "4.04 Not Found".
func CodeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d %s", c>>5, c&0x1f, c.String())
}

// IsSuccess reports whether c is a 2.xx code.
func IsSuccess(c codes.Code) bool { return c>>5 == 2 }

// CodeOf maps an error to the CoAP response code that reports it: an *Error
// anywhere in the chain gives its code; malformed payloads, bad paths and
// values that do not fit their resource give 4.00; an unsupported content
// format gives 4.15; anything else 5.00. CodeOf(nil) is 2.04 Changed, the
// generic success; callers with a more specific success code use their own.
func CodeOf(err error) codes.Code {
	if err == nil {
		return CodeChanged
	}
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrUnsupportedFormat):
		return CodeUnsupportedMediaType
	case errors.Is(err, ErrDecode), errors.Is(err, ErrConvert), errors.Is(err, ErrBadPath), errors.Is(err, ErrLinkFormat):
		return CodeBadRequest
	}
	return CodeInternalServerError
}

// ErrorOf turns a response code and its diagnostic payload into an error:
// nil for 2.xx, otherwise an *Error (matching the sentinel of its code).
func ErrorOf(c codes.Code, msg string) error {
	if IsSuccess(c) {
		return nil
	}
	return &Error{Code: c, Msg: msg}
}
