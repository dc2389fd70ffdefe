package lwm2m

// MaxEndpointLen bounds an endpoint client name (the ep query parameter of
// Register and Bootstrap-Request). The specification sets no limit; ours
// keeps one name in a registration record, a log line and a database key
// small.
const MaxEndpointLen = 255

// ValidEndpoint reports whether ep may name a client: 1 to MaxEndpointLen
// bytes without control characters (LwM2M Core 6.2.1 leaves the alphabet
// open; control characters would forge log lines and break keys).
func ValidEndpoint(ep string) bool {
	if ep == "" || len(ep) > MaxEndpointLen {
		return false
	}
	for _, r := range ep {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
