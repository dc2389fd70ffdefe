package blockpull

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, c := range []struct {
		in, host string
		err      error
	}{
		{"coap://127.0.0.1/fw/1", "127.0.0.1:5683", nil},
		{"coaps://example.org/fw/1?nstart=4", "example.org:5684", nil},
		{"coaps://[::1]:6000/p", "[::1]:6000", nil},
		{"https://example.org/fw", "", ErrUnsupportedProtocol},
		{"coap+tcp://example.org/fw", "", ErrUnsupportedProtocol},
		{"ftp://example.org/fw", "", ErrInvalidURI},
		{"coap:///nohost", "", ErrInvalidURI},
		{"coap://user@example.org/fw", "", ErrInvalidURI},
		{"coap://example.org/fw#frag", "", ErrInvalidURI},
		{"", "", ErrInvalidURI},
		{"coap://example.org/" + strings.Repeat("a", 300), "", ErrInvalidURI},
	} {
		u, err := ParseURI(c.in, 255)
		if !errors.Is(err, c.err) || (err == nil && u.Host != c.host) {
			t.Errorf("ParseURI(%.40q) = %v, %v; want host %q, error %v", c.in, u, err, c.host, c.err)
		}
	}
}

func TestSZXOf(t *testing.T) {
	for _, n := range []int{16, 64, 512, 1024} {
		szx, err := SZXOf(n)
		if err != nil || int(szx.Size()) != n {
			t.Errorf("SZXOf(%d) = %v, %v", n, szx, err)
		}
	}
	for _, n := range []int{0, 8, 100, 2048} {
		if _, err := SZXOf(n); err == nil {
			t.Errorf("SZXOf(%d): no error", n)
		}
	}
}
