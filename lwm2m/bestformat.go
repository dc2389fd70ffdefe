package lwm2m

import (
	"slices"
	"strings"
)

// AcceptOrder is the order in which a server prefers content formats for a
// client of the given LwM2M version ("1.0", "1.1", "1.2"; unknown versions
// are treated as 1.0): the most compact format the version defines first.
// LwM2M 1.2 adds LwM2M CBOR (Core 7.4.6); 1.1 brings SenML and drops the
// 1.0 JSON format; 1.0 knows only TLV and its JSON (1.0 Core 6.4).
func AcceptOrder(version string) []ContentFormat {
	switch {
	case strings.HasPrefix(version, "1.2"):
		return []ContentFormat{FormatLwM2MCBOR, FormatSenMLCBOR, FormatSenMLJSON, FormatTLV}
	case strings.HasPrefix(version, "1.1"):
		return []ContentFormat{FormatSenMLCBOR, FormatTLV, FormatSenMLJSON}
	}
	return []ContentFormat{FormatTLV, FormatLwM2MJSON}
}

// BestFormat picks the first format of AcceptOrder(version) that the client
// announced (the ct of its registration). When it announced none of them,
// it returns the format every client of that version must support: TLV for
// 1.0 (1.0 Core 6.4), and for 1.1 and 1.2 too, since a 1.1 client announcing
// no ct is most often a TLV device; 1.2 clients without ct get SenML CBOR.
func BestFormat(announced []ContentFormat, version string) ContentFormat {
	for _, f := range AcceptOrder(version) {
		if slices.Contains(announced, f) {
			return f
		}
	}
	if strings.HasPrefix(version, "1.2") {
		return FormatSenMLCBOR
	}
	return FormatTLV
}
