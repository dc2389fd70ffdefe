package bootstrap

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// ErrConflict marks a configuration or credential that clashes with one
// already stored (the API answers 409).
var ErrConflict = errors.New("conflict")

// Config returns the configuration of ep, or store.ErrNotFound.
func (b *Server) Config(ep string) (*Config, error) { return b.store.BootstrapConfig(ep) }

// Configs returns every configuration by endpoint.
func (b *Server) Configs() (map[string]*Config, error) { return b.store.BootstrapConfigs() }

// DeleteConfig removes the configuration of ep (store.ErrNotFound if none).
func (b *Server) DeleteConfig(ep string) error { return b.store.DeleteBootstrapConfig(ep) }

// PutConfig stores the configuration of ep. A DM security instance with an
// empty URI gets the DM server's URI (Options.DMURI); one with generatePsk
// gets a fresh identity and 16-byte key, entered in the DM security store
// before the config is stored (and taken out again if storing the config
// fails), so a device is never handed a key the DM server does not know.
// c is updated to what was stored. Errors wrap ErrBadConfig, ErrConflict,
// or are the store's.
func (b *Server) PutConfig(ep string, c *Config) error {
	if !lwm2m.ValidEndpoint(ep) {
		return fmt.Errorf("%w: bad endpoint name", ErrBadConfig)
	}
	var gen *Security
	for _, i := range sortedIDs(c.Security) {
		s := c.Security[i]
		if s == nil || s.BootstrapServer {
			continue
		}
		if s.URI == "" && b.opts.DMURI != "" {
			s.URI = b.opts.DMURI
		}
		if s.GeneratePSK {
			if gen != nil {
				return fmt.Errorf("%w: generatePsk on more than one security instance", ErrBadConfig)
			}
			gen = s
		}
	}
	if err := Validate(c); err != nil {
		return err
	}
	var prev *store.Credential
	if gen != nil {
		if b.opts.DMStore == nil {
			return fmt.Errorf("%w: generatePsk needs the DM server (run the bootstrap server inside fota server)", ErrBadConfig)
		}
		rnd := make([]byte, 20)
		if _, err := rand.Read(rnd); err != nil {
			return err
		}
		cred := store.Credential{Endpoint: ep, Mode: transport.SecurityPSK, Identity: ep + "-" + hex.EncodeToString(rnd[:4]), Key: rnd[4:]}
		if _, err := b.store.BootstrapCredentialByIdentity(cred.Identity); err == nil {
			return fmt.Errorf("%w: generated identity collides with a bootstrap identity; retry", ErrConflict)
		}
		if old, err := b.opts.DMStore.Credential(ep); err == nil {
			prev = &old
		}
		if err := b.opts.DMStore.PutCredential(cred); err != nil {
			return fmt.Errorf("%w: register generated psk at the DM server: %v", ErrConflict, err)
		}
		gen.GeneratePSK = false
		gen.PublicKeyOrID = HexBytes(cred.Identity)
		gen.SecretKey = HexBytes(cred.Key)
		b.log.Info("bootstrap: generated DM psk", "endpoint", ep, "identity", cred.Identity)
	}
	if err := b.store.PutBootstrapConfig(ep, c); err != nil {
		if gen != nil {
			// Undo the DM credential: the config that would hand it out
			// was not stored.
			if prev != nil {
				_ = b.opts.DMStore.PutCredential(*prev)
			} else {
				_ = b.opts.DMStore.DeleteCredential(ep)
			}
		}
		return fmt.Errorf("store bootstrap config: %w", err)
	}
	b.log.Info("bootstrap config stored", "endpoint", ep)
	return nil
}

// Credentials returns the bootstrap credentials.
func (b *Server) Credentials() ([]store.Credential, error) { return b.store.BootstrapCredentials() }

// DeleteCredential removes the bootstrap credential of ep
// (store.ErrNotFound if none).
func (b *Server) DeleteCredential(ep string) error { return b.store.DeleteBootstrapCredential(ep) }

// PutCredential stores the bootstrap credential of c.Endpoint (PSK only).
// The two namespaces stay apart: an identity that opens a DM session must
// not also be a bootstrap identity (or the reverse), or one key would stand
// for two roles; such an identity, or one of another endpoint, is refused
// with ErrConflict.
func (b *Server) PutCredential(c store.Credential) error {
	if b.opts.DMStore != nil {
		if dm, err := b.opts.DMStore.CredentialByIdentity(c.Identity); err == nil {
			return fmt.Errorf("%w: psk identity %q is a DM identity (endpoint %q)", ErrConflict, c.Identity, dm.Endpoint)
		}
	}
	if err := b.store.PutBootstrapCredential(c); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: %v", ErrConflict, err)
		}
		return err
	}
	b.log.Info("bootstrap credential stored", "endpoint", c.Endpoint, "identity", c.Identity)
	return nil
}
