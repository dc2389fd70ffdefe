package lwm2m

import "strconv"

// ContentFormat is a CoAP Content-Format number (RFC 7252 12.3 and the
// LwM2M registrations in LwM2M Core 7.1).
type ContentFormat uint16

// The content formats LwM2M uses.
const (
	FormatText       ContentFormat = 0     // text/plain, single value
	FormatLinkFormat ContentFormat = 40    // application/link-format (RFC 6690)
	FormatOpaque     ContentFormat = 42    // application/octet-stream, single opaque value
	FormatCBOR       ContentFormat = 60    // application/cbor, single value
	FormatSenMLJSON  ContentFormat = 110   // application/senml+json
	FormatSenMLCBOR  ContentFormat = 112   // application/senml+cbor
	FormatTLV        ContentFormat = 11542 // application/vnd.oma.lwm2m+tlv
	FormatLwM2MJSON  ContentFormat = 11543 // application/vnd.oma.lwm2m+json (LwM2M 1.0)
	FormatLwM2MCBOR  ContentFormat = 11544 // application/vnd.oma.lwm2m+cbor (LwM2M 1.2)
)

var formatNames = map[ContentFormat]string{
	FormatText: "text/plain", FormatLinkFormat: "application/link-format",
	FormatOpaque: "application/octet-stream", FormatCBOR: "application/cbor",
	FormatSenMLJSON: "application/senml+json", FormatSenMLCBOR: "application/senml+cbor",
	FormatTLV: "application/vnd.oma.lwm2m+tlv", FormatLwM2MJSON: "application/vnd.oma.lwm2m+json",
	FormatLwM2MCBOR: "application/vnd.oma.lwm2m+cbor",
}

// String gives the media type, or "content-format(N)" for an unknown number.
func (f ContentFormat) String() string {
	if n, ok := formatNames[f]; ok {
		return n
	}
	return "content-format(" + strconv.Itoa(int(f)) + ")"
}
