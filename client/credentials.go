package client

// PSK returns the DTLS-PSK identity and key the client uses with its
// server, so that other downloads of the device (the Firmware Update
// object's coaps:// Package URI, LwM2M Core E.6) reuse the credentials it
// already has. The key is a copy; identity is "" when the client has none.
func (c *Client) PSK() (identity string, key []byte) {
	a := c.ServerAccount() // under the lock: SetServerAccount may change it
	return a.PSKIdentity, a.PSKKey
}
