package lwm2m

import (
	"fmt"
	"unicode/utf8"
)

// text/plain (LwM2M Core 7.4.1) and opaque (7.4.2) carry one value of a
// single resource or resource instance, and no type: the model gives it.

func encodeText(entries []Entry) ([]byte, error) {
	e, err := single("text/plain", entries)
	if err != nil {
		return nil, err
	}
	if e.Value.Type() == TypeNone {
		return nil, fmt.Errorf("%w: text/plain: %v has no value", ErrUnsupportedFormat, e.Path)
	}
	return []byte(e.Value.Text()), nil
}

func decodeText(base Path, data []byte, types TypeResolver) ([]Entry, error) {
	if err := singleValueBase("text/plain", base); err != nil {
		return nil, err
	}
	if !utf8.Valid(data) {
		return nil, decodeErr("text/plain", firstInvalidUTF8(data), "invalid UTF-8")
	}
	t, ok := resourceType(types, base)
	if !ok {
		t = TypeString
	}
	v, err := ParseText(t, string(data))
	if err != nil {
		return nil, fmt.Errorf("text/plain %v: %w", base, err)
	}
	return []Entry{{Path: base, Value: v}}, nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func encodeOpaque(entries []Entry) ([]byte, error) {
	e, err := single("opaque", entries)
	if err != nil {
		return nil, err
	}
	if e.Value.Type() != TypeOpaque {
		return nil, fmt.Errorf("%w: opaque format carries only opaque values, %v is %v", ErrUnsupportedFormat, e.Path, e.Value.Type())
	}
	return append([]byte(nil), e.Value.Bytes()...), nil
}

func decodeOpaque(base Path, data []byte) ([]Entry, error) {
	if err := singleValueBase("opaque", base); err != nil {
		return nil, err
	}
	return []Entry{{Path: base, Value: Opaque(append([]byte(nil), data...))}}, nil
}
