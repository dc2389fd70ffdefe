package bolt

import (
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// PutBootstrapConfig implements store.BootstrapStore.
func (s *Store) PutBootstrapConfig(ep string, c *store.BootstrapConfig) error {
	if ep == "" {
		return errors.New("put bootstrap config: empty endpoint")
	}
	return s.db.Update(func(tx *bbolt.Tx) error { return putJSON(tx.Bucket(bucketBSConfigs), []byte(ep), c) })
}

// BootstrapConfig implements store.BootstrapStore.
func (s *Store) BootstrapConfig(ep string) (*store.BootstrapConfig, error) {
	c, err := get[store.BootstrapConfig](s.db, bucketBSConfigs, ep)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// DeleteBootstrapConfig implements store.BootstrapStore.
func (s *Store) DeleteBootstrapConfig(ep string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketBSConfigs)
		if b.Get([]byte(ep)) == nil {
			return fmt.Errorf("%w: bootstrap config %q", store.ErrNotFound, ep)
		}
		return b.Delete([]byte(ep))
	})
}

// BootstrapConfigs implements store.BootstrapStore.
func (s *Store) BootstrapConfigs() (map[string]*store.BootstrapConfig, error) {
	out := map[string]*store.BootstrapConfig{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return forEach(tx.Bucket(bucketBSConfigs), func(k []byte, c store.BootstrapConfig) error {
			out[string(k)] = &c
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read bootstrap configs: %w", err)
	}
	return out, nil
}

// PutBootstrapCredential implements store.BootstrapStore.
func (s *Store) PutBootstrapCredential(c store.Credential) error { return bsCredentials.put(s.db, c) }

// BootstrapCredential implements store.BootstrapStore.
func (s *Store) BootstrapCredential(ep string) (store.Credential, error) {
	return get[store.Credential](s.db, bucketBSCredentials, ep)
}

// BootstrapCredentialByIdentity implements store.BootstrapStore.
func (s *Store) BootstrapCredentialByIdentity(identity string) (store.Credential, error) {
	return bsCredentials.byIdentity(s.db, identity)
}

// DeleteBootstrapCredential implements store.BootstrapStore.
func (s *Store) DeleteBootstrapCredential(ep string) error { return bsCredentials.delete(s.db, ep) }

// BootstrapCredentials implements store.BootstrapStore.
func (s *Store) BootstrapCredentials() ([]store.Credential, error) {
	return all[store.Credential](s.db, bucketBSCredentials)
}
