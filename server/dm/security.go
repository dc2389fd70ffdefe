package dm

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// ErrIdentity marks a device speaking as an endpoint it has not
// authenticated as. LwM2M Core 7.2.1: the server checks that the endpoint
// name belongs to the credentials of the secure session.
var ErrIdentity = errors.New("identity does not match endpoint")

// pskKey is pion's PSK callback: the key of a PSK identity from the
// security store.
func (s *Server) pskKey(identity []byte) ([]byte, error) {
	c, err := s.store.CredentialByIdentity(string(identity))
	if err != nil {
		return nil, fmt.Errorf("psk identity %q: %w", identity, err)
	}
	if c.Mode != transport.SecurityPSK || len(c.Key) == 0 {
		return nil, fmt.Errorf("psk identity %q: endpoint %q is not in psk mode", identity, c.Endpoint)
	}
	return c.Key, nil
}

// checkIdentity decides whether the peer of sess may act as endpoint ep.
// Plain CoAP is allowed only for endpoints without credentials (like
// Leshan's "no security" mode); a secure session must carry the
// endpoint's own credential.
func (s *Server) checkIdentity(sess *transport.Session, ep string) error {
	c, err := s.store.Credential(ep)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read credentials of %q: %w", ep, err)
	}
	has := err == nil
	switch sess.Security {
	case transport.SecurityNone:
		if has {
			return fmt.Errorf("%w: endpoint %q has %s credentials, plain CoAP refused", ErrIdentity, ep, c.Mode)
		}
		return nil
	case transport.SecurityPSK:
		if !has || c.Mode != transport.SecurityPSK ||
			subtle.ConstantTimeCompare([]byte(c.Identity), []byte(sess.Identity)) != 1 {
			return fmt.Errorf("%w: psk identity %q is not endpoint %q's", ErrIdentity, sess.Identity, ep)
		}
		return nil
	case transport.SecurityX509:
		if !has || c.Mode != transport.SecurityX509 || sess.Identity != ep {
			return fmt.Errorf("%w: certificate CN %q for endpoint %q", ErrIdentity, sess.Identity, ep)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown session security %q", ErrIdentity, sess.Security)
}

// ErrReservedIdentity marks a PSK identity that belongs to another role (a
// bootstrap credential) and may not be a DM identity (ReserveIdentities).
var ErrReservedIdentity = errors.New("psk identity is reserved")

// PutCredential stores the security configuration of c.Endpoint in the
// security store. A PSK identity another role reserved is refused with
// ErrReservedIdentity; one of another endpoint with store.ErrExists.
func (s *Server) PutCredential(c store.Credential) error {
	if c.Mode == transport.SecurityPSK {
		if taken := s.reserved.Load(); taken != nil {
			if owner, ok := (*taken)(c.Identity); ok {
				return fmt.Errorf("%w: %q is a bootstrap identity (endpoint %q)", ErrReservedIdentity, c.Identity, owner)
			}
		}
	}
	if err := s.store.PutCredential(c); err != nil {
		return err
	}
	s.log.Info("security info stored", "endpoint", c.Endpoint, "mode", c.Mode)
	return nil
}

// DeleteCredential removes the security configuration of an endpoint
// (store.ErrNotFound if it has none).
func (s *Server) DeleteCredential(ep string) error {
	if err := s.store.DeleteCredential(ep); err != nil {
		return err
	}
	s.log.Info("security info deleted", "endpoint", ep)
	return nil
}

// Credentials lists the security store.
func (s *Server) Credentials() ([]store.Credential, error) { return s.store.Credentials() }
