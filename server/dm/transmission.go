package dm

import (
	"strings"
	"time"

	"github.com/fotastack/fota/server/transport"
)

// TransmissionConfig chooses the CoAP transmission parameters (RFC 7252
// 4.8) the server uses towards a device, by device type: NB-IoT round
// trips of 1.6 to 10 s (3GPP TR 45.820) make RFC 7252's ACK_TIMEOUT of 2 s
// retransmit every request several times before the first answer can
// arrive.
type TransmissionConfig struct {
	// Default applies to devices of no listed type; zero fields take RFC
	// 7252's defaults.
	Default transport.Transmission
	// ByType maps a device type to its parameters.
	ByType map[string]transport.Transmission
	// TypeOf names the type of a device by its DTLS identity. Nil: the
	// identity's prefix up to the first '/', if it names a type in ByType
	// (identities such as "nb-iot/ep-17").
	TypeOf func(identity string) string
}

// DefaultTransmissions are parameters for the link types of the fleet
// simulator's profiles (client/linksim). NStart is 1 everywhere (RFC 7252
// 4.7). ACKTimeout sits above the link's worst round trip so that a
// retransmission means a loss, not a slow answer: NB-IoT's RTT reaches 10 s
// in the extended coverage classes (3GPP TR 45.820 / TR 36.888), LTE-M's
// stays within about 300 ms. Block sizes: small blocks for NB-IoT, whose
// transport blocks carry a few hundred bytes (so one lost radio block
// costs a small CoAP block), the whole 1024 elsewhere.
func DefaultTransmissions() map[string]transport.Transmission {
	return map[string]transport.Transmission{
		"lan":    {ACKTimeout: 2 * time.Second, ACKRandomFactor: 1.5, MaxRetransmit: 4, NStart: 1, BlockSize: 1024},
		"lte-m":  {ACKTimeout: 3 * time.Second, ACKRandomFactor: 1.5, MaxRetransmit: 4, NStart: 1, BlockSize: 1024},
		"nb-iot": {ACKTimeout: 15 * time.Second, ACKRandomFactor: 1.5, MaxRetransmit: 3, NStart: 1, BlockSize: 512},
	}
}

// lookup gives the parameters for a peer identity; false means go-coap's
// defaults (nothing configured).
func (c TransmissionConfig) lookup(identity string) (transport.Transmission, bool) {
	if len(c.ByType) > 0 {
		var typ string
		if c.TypeOf != nil {
			typ = c.TypeOf(identity)
		} else if i := strings.IndexByte(identity, '/'); i > 0 {
			typ = identity[:i]
		}
		if t, ok := c.ByType[typ]; ok {
			return t, true
		}
	}
	if c.Default != (transport.Transmission{}) {
		return c.Default, true
	}
	return transport.Transmission{}, false
}
