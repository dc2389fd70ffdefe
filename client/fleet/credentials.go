package fleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// Credentials derives device i's endpoint name, PSK identity and key from
// prefix: endpoint "ep-<i>", identity "<prefix>ep-<i>", key the first 16
// bytes of HMAC-SHA256(prefix, endpoint). Deterministic, so that a server
// can be provisioned for a fleet from the prefix alone.
func Credentials(prefix string, i int) (endpoint, identity string, key []byte) {
	endpoint = fmt.Sprintf("ep-%d", i)
	m := hmac.New(sha256.New, []byte(prefix))
	m.Write([]byte(endpoint))
	return endpoint, prefix + endpoint, m.Sum(nil)[:16]
}
