// Package lwm2m holds the LwM2M protocol model and the codecs for every
// content format a device or server may use (OMA LwM2M Core 1.0 to 1.2).
//
// The model: a Path addresses a node (/o, /o/i, /o/i/r, /o/i/r/ri); a Value
// is one typed value (LwM2M Core Appendix C); an Entry is a value at a
// resource or resource-instance path. Every codec encodes from and decodes
// to the flat []Entry form; BuildTree and EntriesOf convert it to and from
// the Object/Instance/Resource tree.
//
// The codecs, chosen by CoAP content-format number:
//
//	Encode(cf, base, entries) ([]byte, error)
//	Decode(cf, base, data, types) ([]Entry, error)
//
// cover text/plain (0), opaque (42), CBOR (60), SenML JSON (110), SenML
// CBOR (112), TLV (11542), LwM2M JSON (11543) and LwM2M CBOR (11544). base
// is the request path; Root for composite operations, which SenML and
// LwM2M CBOR carry. Formats without types on the wire ask a TypeResolver
// (the objects registry) for each resource's type. DecodeTimed and
// EncodeTimed keep SenML record times; DecodePaths and EncodePaths carry
// the path lists of Read-Composite and Observe-Composite requests.
// BestFormat picks the format to ask a client for.
//
// The CoRE link format (RFC 6690) of registration payloads and Discover
// answers is parsed by ParseLinks and ParseRegistrationPayload; Attributes
// types the LwM2M attributes. Error and the Code constants map operation
// failures to CoAP response codes (go-coap's codes.Code) and back.
//
// Every decoder takes arbitrary bytes: it returns an error saying which
// byte and what was expected, never panics, and allocates in proportion to
// its input. Errors wrap ErrDecode, ErrConvert, ErrUnsupportedFormat,
// ErrLinkFormat or ErrBadPath, which CodeOf maps to 4.00 or 4.15.
package lwm2m
