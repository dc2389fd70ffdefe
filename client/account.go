package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/fotastack/fota/lwm2m"
)

// errReconnect ends a session because the server account changed; Run
// registers with the new account at once.
var errReconnect = errors.New("server account changed")

// ServerAccount is the LwM2M server the client registers with and the
// credentials it uses: what bootstrap (issue 4) provisions.
type ServerAccount struct {
	URI         string // coap://host:port or coaps://host:port
	PSKIdentity string
	PSKKey      []byte
	// X.509 mode, used when Certificate is set.
	Certificate        *tls.Certificate
	RootCAs            *x509.CertPool
	InsecureSkipVerify bool
	ServerName         string
}

// ServerAccount returns the account in use.
func (c *Client) ServerAccount() ServerAccount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ServerAccount{
		URI: c.cfg.ServerURI, PSKIdentity: c.cfg.PSKIdentity, PSKKey: append([]byte(nil), c.cfg.PSKKey...),
		Certificate: c.cfg.Certificate, RootCAs: c.cfg.RootCAs,
		InsecureSkipVerify: c.cfg.InsecureSkipVerify, ServerName: c.cfg.ServerName,
	}
}

// SetServerAccount switches the client to another server or other
// credentials, after bootstrap for example. A running client de-registers
// from the old server and registers with the new one at once. The
// Security object's instance 0 is updated to match.
func (c *Client) SetServerAccount(a ServerAccount) error {
	t, err := parseServerURI(a.URI)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if t.secure && a.Certificate == nil && (a.PSKIdentity == "" || len(a.PSKKey) == 0) {
		return errors.New("client: coaps server needs a PSK identity and key or a certificate")
	}
	c.mu.Lock()
	c.target = t
	c.cfg.ServerURI, c.cfg.PSKIdentity, c.cfg.PSKKey = a.URI, a.PSKIdentity, append([]byte(nil), a.PSKKey...)
	c.cfg.Certificate, c.cfg.RootCAs = a.Certificate, a.RootCAs
	c.cfg.InsecureSkipVerify, c.cfg.ServerName = a.InsecureSkipVerify, a.ServerName
	c.mu.Unlock()
	if sec := c.SimpleObject(0); sec != nil {
		mode := int64(SecurityModeNoSec)
		switch {
		case t.secure && a.Certificate != nil:
			mode = SecurityModeCertificate
		case t.secure:
			mode = SecurityModePSK
		}
		for r, v := range map[uint16]lwm2m.Value{
			SecServerURI: lwm2m.String(a.URI), SecMode: lwm2m.Integer(mode),
			SecPublicKeyOrID: lwm2m.Opaque([]byte(a.PSKIdentity)), SecSecretKey: lwm2m.Opaque(append([]byte(nil), a.PSKKey...)),
		} {
			_ = sec.Set(lwm2m.ResourcePath(0, 0, r), v)
		}
	}
	select {
	case c.reconnect <- struct{}{}:
	default:
	}
	return nil
}

// account returns the target and a copy of the configuration, for one dial.
func (c *Client) account() (target, Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target, c.cfg
}

// currentTarget is the server address of the account in use.
func (c *Client) currentTarget() target {
	t, _ := c.account()
	return t
}
