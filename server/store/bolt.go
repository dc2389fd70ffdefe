package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names. Each concern has its own bucket so that later concerns
// (bootstrap configurations, firmware, campaigns) add buckets without
// touching these.
var (
	bucketRegistrations = []byte("registrations")
	bucketCredentials   = []byte("credentials")
	bucketPSKIdentities = []byte("psk_identities") // identity -> endpoint
	bucketObservations  = []byte("observations")
	bucketSettings      = []byte("settings")
)

// Bolt is the bbolt implementation of Store: one file, one writer.
// Every write is one bbolt transaction, committed with fsync before the
// call returns, so it survives a crash or power cut once it returned nil;
// a write interrupted by a crash is not visible at all.
type Bolt struct {
	db *bolt.DB
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (or creates) the database file at path. It fails after
// one second if another process holds the file.
func OpenBolt(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// The freelist is not written at every commit (one page write
		// less per transaction; etcd runs bbolt this way): bbolt rebuilds
		// it by scanning the file when it opens it. Durability is
		// unchanged, every commit is still synced.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRegistrations, bucketCredentials, bucketPSKIdentities, bucketObservations, bucketSettings} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create buckets in %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// DB returns the underlying database so that other server concerns
// (bootstrap, firmware, campaigns) can keep their own buckets in the same
// file.
func (s *Bolt) DB() *bolt.DB { return s.db }

// Close closes the database file.
func (s *Bolt) Close() error { return s.db.Close() }

func put(tx *bolt.Tx, bucket []byte, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put(key, data)
}

func all[T any](db *bolt.DB, bucket []byte) ([]T, error) {
	var out []T
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("decode %s/%q: %w", bucket, k, err)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}

// PutRegistration implements Store. Concurrent calls are batched into one
// transaction (bbolt Batch), so many devices registering at once share
// fsyncs.
func (s *Bolt) PutRegistration(r Registration) error {
	if r.ID == "" {
		return errors.New("put registration: empty id")
	}
	// Encoded before the batch: the batch's function runs inside the one
	// write transaction, which every other writer waits for.
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketRegistrations).Put([]byte(r.ID), data) })
}

// DeleteRegistration implements Store; the registration and its
// observations go in one transaction.
func (s *Bolt) DeleteRegistration(id string) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRegistrations).Delete([]byte(id)); err != nil {
			return err
		}
		ob := tx.Bucket(bucketObservations)
		var dead [][]byte
		err := ob.ForEach(func(k, v []byte) error {
			var o Observation
			if json.Unmarshal(v, &o) == nil && o.RegID == id {
				dead = append(dead, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := ob.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Registrations implements Store.
func (s *Bolt) Registrations() ([]Registration, error) {
	return all[Registration](s.db, bucketRegistrations)
}

// PutCredential implements Store. The identity index is updated in the
// same transaction; an identity already used by another endpoint is refused
// (two endpoints sharing a PSK identity could impersonate each other).
func (s *Bolt) PutCredential(c Credential) error {
	if c.Endpoint == "" {
		return errors.New("put credential: empty endpoint")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketPSKIdentities)
		if c.Identity != "" {
			if ep := idx.Get([]byte(c.Identity)); ep != nil && string(ep) != c.Endpoint {
				return fmt.Errorf("put credential: psk identity %q already belongs to endpoint %q", c.Identity, ep)
			}
		}
		if old := tx.Bucket(bucketCredentials).Get([]byte(c.Endpoint)); old != nil {
			var o Credential
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
		return put(tx, bucketCredentials, []byte(c.Endpoint), c)
	})
}

// DeleteCredential implements Store.
func (s *Bolt) DeleteCredential(endpoint string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCredentials)
		old := b.Get([]byte(endpoint))
		if old == nil {
			return ErrNotFound
		}
		var o Credential
		if json.Unmarshal(old, &o) == nil && o.Identity != "" {
			if err := tx.Bucket(bucketPSKIdentities).Delete([]byte(o.Identity)); err != nil {
				return err
			}
		}
		return b.Delete([]byte(endpoint))
	})
}

// Credential implements Store.
func (s *Bolt) Credential(endpoint string) (Credential, error) {
	var c Credential
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCredentials).Get([]byte(endpoint))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &c)
	})
	return c, err
}

// CredentialByIdentity implements Store.
func (s *Bolt) CredentialByIdentity(identity string) (Credential, error) {
	var c Credential
	err := s.db.View(func(tx *bolt.Tx) error {
		ep := tx.Bucket(bucketPSKIdentities).Get([]byte(identity))
		if ep == nil {
			return ErrNotFound
		}
		v := tx.Bucket(bucketCredentials).Get(ep)
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &c)
	})
	return c, err
}

// Credentials implements Store.
func (s *Bolt) Credentials() ([]Credential, error) {
	return all[Credential](s.db, bucketCredentials)
}

// PutObservation implements Store.
func (s *Bolt) PutObservation(o Observation) error {
	if len(o.Token) == 0 {
		return errors.New("put observation: empty token")
	}
	return s.db.Batch(func(tx *bolt.Tx) error { return put(tx, bucketObservations, o.Token, o) })
}

// DeleteObservation implements Store.
func (s *Bolt) DeleteObservation(token []byte) error {
	return s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketObservations).Delete(token) })
}

// Observations implements Store.
func (s *Bolt) Observations() ([]Observation, error) {
	return all[Observation](s.db, bucketObservations)
}

// Setting implements Store.
func (s *Bolt) Setting(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSettings).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// PutSetting implements Store.
func (s *Bolt) PutSetting(key string, value []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSettings).Put([]byte(key), value) })
}
