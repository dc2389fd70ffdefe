package lwm2m

import (
	"errors"
	"fmt"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func TestCodes_ErrorMapping(t *testing.T) {
	_, decErr := Decode(FormatTLV, InstancePath(3, 0), []byte{0xC8, 0, 20}, nil)
	_, fmtErr := Decode(ContentFormat(9999), InstancePath(3, 0), nil, nil)
	_, convErr := Decode(FormatText, ResourcePath(3, 0, 9), []byte("x"), deviceTypes)
	_, pathErr := ParsePath("/a")
	_, linkErr := ParseLinks([]byte("</1/0"))
	cases := []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.Changed},
		{ErrNotFound, codes.NotFound},
		{fmt.Errorf("read /9/0: %w", NewError(codes.MethodNotAllowed, "read-only")), codes.MethodNotAllowed},
		{decErr, codes.BadRequest},
		{fmtErr, codes.UnsupportedMediaType},
		{convErr, codes.BadRequest},
		{pathErr, codes.BadRequest},
		{linkErr, codes.BadRequest},
		{errors.New("disk full"), codes.InternalServerError},
	}
	for _, c := range cases {
		if got := CodeOf(c.err); got != c.want {
			t.Errorf("CodeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestCodes_ErrorOfMatchesSentinels(t *testing.T) {
	if ErrorOf(codes.Content, "") != nil || ErrorOf(codes.Created, "") != nil {
		t.Fatal("success code gave an error")
	}
	sentinels := map[codes.Code]error{
		codes.BadRequest: ErrBadRequest, codes.Unauthorized: ErrUnauthorized, codes.NotFound: ErrNotFound,
		codes.MethodNotAllowed: ErrMethodNotAllowed, codes.NotAcceptable: ErrNotAcceptable,
		codes.RequestEntityIncomplete: ErrRequestEntityIncomplete, codes.PreconditionFailed: ErrPreconditionFailed,
		codes.RequestEntityTooLarge: ErrRequestEntityTooLarge, codes.UnsupportedMediaType: ErrUnsupportedMediaType,
		codes.InternalServerError: ErrInternal, codes.NotImplemented: ErrNotImplemented, codes.ServiceUnavailable: ErrServiceUnavailable,
	}
	for c, s := range sentinels {
		err := ErrorOf(c, "detail")
		if !errors.Is(err, s) || CodeOf(err) != c {
			t.Errorf("%v: %v does not match its sentinel", c, err)
		}
		if errors.Is(err, ErrForbidden) {
			t.Errorf("%v matches 4.03", c)
		}
	}
	if got := ErrorOf(codes.NotFound, "no /9").Error(); got != "4.04 NotFound: no /9" {
		t.Errorf("message %q", got)
	}
}
