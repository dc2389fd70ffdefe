package server

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// Buckets of the bootstrap server, beside the DM server's in the same
// file. Bootstrap credentials have their own buckets: the bootstrap
// identity of a device must never open a session at the DM server, whose
// PSK lookup reads only the DM credential buckets.
var (
	bucketBSConfigs       = []byte("bootstrap_configs")
	bucketBSCredentials   = []byte("bootstrap_credentials")
	bucketBSPSKIdentities = []byte("bootstrap_psk_identities") // identity -> endpoint
)

// BootstrapStore keeps per-endpoint bootstrap configurations and bootstrap
// credentials in a bbolt file. Each Put/Delete is one transaction,
// fsynced before it returns: it survives a crash once it returned nil.
type BootstrapStore struct {
	db *bolt.DB
}

// NewBootstrapStore makes the bootstrap buckets in db if they are missing.
func NewBootstrapStore(db *bolt.DB) (*BootstrapStore, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketBSConfigs, bucketBSCredentials, bucketBSPSKIdentities} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create bootstrap buckets: %w", err)
	}
	return &BootstrapStore{db: db}, nil
}

// PutConfig stores the configuration of endpoint ep, replacing any.
func (s *BootstrapStore) PutConfig(ep string, c *BootstrapConfig) error {
	if ep == "" {
		return errors.New("put bootstrap config: empty endpoint")
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("put bootstrap config %q: %w", ep, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBSConfigs).Put([]byte(ep), data) })
}

// Config returns the configuration of ep, or store.ErrNotFound.
func (s *BootstrapStore) Config(ep string) (*BootstrapConfig, error) {
	var c BootstrapConfig
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBSConfigs).Get([]byte(ep))
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &c)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// DeleteConfig removes the configuration of ep (store.ErrNotFound if none).
func (s *BootstrapStore) DeleteConfig(ep string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBSConfigs)
		if b.Get([]byte(ep)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(ep))
	})
}

// Configs returns all configurations by endpoint.
func (s *BootstrapStore) Configs() (map[string]*BootstrapConfig, error) {
	out := map[string]*BootstrapConfig{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBSConfigs).ForEach(func(k, v []byte) error {
			var c BootstrapConfig
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode bootstrap config %q: %w", k, err)
			}
			out[string(k)] = &c
			return nil
		})
	})
	return out, err
}

// PutCredential stores the bootstrap credential of c.Endpoint. A PSK
// identity already used by another endpoint's bootstrap credential is
// refused, as in the DM store.
func (s *BootstrapStore) PutCredential(c store.Credential) error {
	if c.Endpoint == "" {
		return errors.New("put bootstrap credential: empty endpoint")
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketBSPSKIdentities)
		if c.Identity != "" {
			if ep := idx.Get([]byte(c.Identity)); ep != nil && string(ep) != c.Endpoint {
				return fmt.Errorf("put bootstrap credential: psk identity %q already belongs to endpoint %q", c.Identity, ep)
			}
		}
		b := tx.Bucket(bucketBSCredentials)
		if old := b.Get([]byte(c.Endpoint)); old != nil {
			var o store.Credential
			if json.Unmarshal(old, &o) == nil && o.Identity != "" {
				if err := idx.Delete([]byte(o.Identity)); err != nil {
					return err
				}
			}
		}
		if c.Identity != "" {
			if err := idx.Put([]byte(c.Identity), []byte(c.Endpoint)); err != nil {
				return err
			}
		}
		return b.Put([]byte(c.Endpoint), data)
	})
}

// Credential returns the bootstrap credential of ep, or store.ErrNotFound.
func (s *BootstrapStore) Credential(ep string) (store.Credential, error) {
	var c store.Credential
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBSCredentials).Get([]byte(ep))
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &c)
	})
	return c, err
}

// CredentialByIdentity returns the bootstrap credential with this PSK
// identity, or store.ErrNotFound.
func (s *BootstrapStore) CredentialByIdentity(identity string) (store.Credential, error) {
	var c store.Credential
	err := s.db.View(func(tx *bolt.Tx) error {
		ep := tx.Bucket(bucketBSPSKIdentities).Get([]byte(identity))
		if ep == nil {
			return store.ErrNotFound
		}
		v := tx.Bucket(bucketBSCredentials).Get(ep)
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &c)
	})
	return c, err
}

// DeleteCredential removes the bootstrap credential of ep.
func (s *BootstrapStore) DeleteCredential(ep string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBSCredentials)
		old := b.Get([]byte(ep))
		if old == nil {
			return store.ErrNotFound
		}
		var o store.Credential
		if json.Unmarshal(old, &o) == nil && o.Identity != "" {
			if err := tx.Bucket(bucketBSPSKIdentities).Delete([]byte(o.Identity)); err != nil {
				return err
			}
		}
		return b.Delete([]byte(ep))
	})
}

// Credentials returns all bootstrap credentials.
func (s *BootstrapStore) Credentials() ([]store.Credential, error) {
	var out []store.Credential
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBSCredentials).ForEach(func(k, v []byte) error {
			var c store.Credential
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode bootstrap credential %q: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}
