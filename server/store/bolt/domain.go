package bolt

import (
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// Domains, tokens and ownership (store.DomainStore):
//
//	domains      name -> Domain
//	tokens       token ID -> Token
//	token_hashes SHA-256 hex of the secret -> token ID
//	owners       kind NUL key -> domain name
//
// A key absent from owners is the default domain's: a file written before
// domains opens and means what it meant.
var (
	bucketDomains     = []byte("domains")
	bucketTokens      = []byte("tokens")
	bucketTokenHashes = []byte("token_hashes")
	bucketOwners      = []byte("owners")
)

func ownerKey(kind, key string) []byte { return []byte(kind + "\x00" + key) }

// AddDomain implements store.DomainStore.
func (s *Store) AddDomain(d store.Domain) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDomains)
		if b.Get([]byte(d.Name)) != nil || d.Name == store.DefaultDomain {
			return fmt.Errorf("%w: domain %q", store.ErrExists, d.Name)
		}
		return putJSON(b, []byte(d.Name), d)
	})
}

// Domains implements store.DomainStore.
func (s *Store) Domains() ([]store.Domain, error) { return all[store.Domain](s.db, bucketDomains) }

// PutToken implements store.DomainStore.
func (s *Store) PutToken(t store.Token) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		h := tx.Bucket(bucketTokenHashes)
		if id := h.Get([]byte(t.Hash)); id != nil && string(id) != t.ID {
			return fmt.Errorf("%w: token hash", store.ErrExists)
		}
		var old store.Token
		if err := getJSON(tx.Bucket(bucketTokens), []byte(t.ID), &old); err == nil && old.Hash != t.Hash {
			if err := h.Delete([]byte(old.Hash)); err != nil {
				return err
			}
		}
		if err := h.Put([]byte(t.Hash), []byte(t.ID)); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketTokens), []byte(t.ID), t)
	})
}

// TokenByHash implements store.DomainStore.
func (s *Store) TokenByHash(hash string) (store.Token, error) {
	var t store.Token
	err := s.db.View(func(tx *bbolt.Tx) error {
		id := tx.Bucket(bucketTokenHashes).Get([]byte(hash))
		if id == nil {
			return fmt.Errorf("%w: token", store.ErrNotFound)
		}
		return getJSON(tx.Bucket(bucketTokens), id, &t)
	})
	return t, err
}

// Tokens implements store.DomainStore.
func (s *Store) Tokens(domain string) ([]store.Token, error) {
	ts, err := all[store.Token](s.db, bucketTokens)
	out := ts[:0]
	for _, t := range ts {
		if t.Domain == domain {
			out = append(out, t)
		}
	}
	return out, err
}

// Claim implements store.DomainStore.
func (s *Store) Claim(kind, key, domain string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketOwners)
		k := ownerKey(kind, key)
		if have := b.Get(k); have != nil {
			if string(have) == domain {
				return nil
			}
			return fmt.Errorf("%w: %s %q belongs to another domain", store.ErrExists, kind, key)
		}
		return b.Put(k, []byte(domain))
	})
}

// Owner implements store.DomainStore.
func (s *Store) Owner(kind, key string) (string, error) {
	var out string
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketOwners).Get(ownerKey(kind, key))
		if v == nil {
			return fmt.Errorf("%w: owner of %s %q", store.ErrNotFound, kind, key)
		}
		out = string(v)
		return nil
	})
	return out, err
}

// Owners implements store.DomainStore.
func (s *Store) Owners(kind string) (map[string]string, error) {
	out := map[string]string{}
	prefix := []byte(kind + "\x00")
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOwners).Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			out[string(k[len(prefix):])] = string(v)
		}
		return nil
	})
	return out, err
}

// Release implements store.DomainStore.
func (s *Store) Release(kind, key string) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketOwners).Delete(ownerKey(kind, key)) })
}
