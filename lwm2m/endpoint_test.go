package lwm2m

import (
	"strings"
	"testing"
)

func TestValidEndpoint(t *testing.T) {
	for _, tc := range []struct {
		ep   string
		want bool
	}{
		{"meter-1", true},
		{"urn:imei:123456789012345", true},
		{"", false},
		{strings.Repeat("a", MaxEndpointLen), true},
		{strings.Repeat("a", MaxEndpointLen+1), false},
		{"bad\nname", false},
		{"del\x7f", false},
		{"ünïcode", true},
	} {
		if got := ValidEndpoint(tc.ep); got != tc.want {
			t.Errorf("ValidEndpoint(%q) = %v, want %v", tc.ep, got, tc.want)
		}
	}
}
