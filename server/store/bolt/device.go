package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// PutRegistration implements store.RegistrationStore. Concurrent calls are
// batched into one transaction (bbolt Batch), so many devices registering
// at once share fsyncs.
func (s *Store) PutRegistration(r store.Registration) error {
	if r.ID == "" {
		return errors.New("put registration: empty id")
	}
	// Encoded before the batch: the batch's function runs inside the one
	// write transaction, which every other writer waits for.
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bucketRegistrations).Put([]byte(r.ID), data) })
}

// DeleteRegistration implements store.RegistrationStore; the registration
// and its observations go in one transaction.
func (s *Store) DeleteRegistration(id string) error {
	return s.db.Batch(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketRegistrations).Delete([]byte(id)); err != nil {
			return err
		}
		ob := tx.Bucket(bucketObservations)
		var dead [][]byte
		err := forEach(ob, func(k []byte, o store.Observation) error {
			if o.RegID == id {
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

// Registrations implements store.RegistrationStore.
func (s *Store) Registrations() ([]store.Registration, error) {
	return all[store.Registration](s.db, bucketRegistrations)
}

// credentialBuckets are a credential bucket and its PSK identity index:
// the DM server's and the bootstrap server's are kept apart, with the same
// rules.
type credentialBuckets struct {
	what       string // for errors: "credential", "bootstrap credential"
	creds, idx []byte
}

var (
	dmCredentials = credentialBuckets{"credential", bucketCredentials, bucketPSKIdentities}
	bsCredentials = credentialBuckets{"bootstrap credential", bucketBSCredentials, bucketBSPSKIdentities}
)

// put stores c; the identity index is updated in the same transaction, and
// an identity already used by another endpoint is refused.
func (cb credentialBuckets) put(db *bbolt.DB, c store.Credential) error {
	if c.Endpoint == "" {
		return fmt.Errorf("put %s: empty endpoint", cb.what)
	}
	return db.Update(func(tx *bbolt.Tx) error {
		idx, b := tx.Bucket(cb.idx), tx.Bucket(cb.creds)
		if c.Identity != "" {
			if ep := idx.Get([]byte(c.Identity)); ep != nil && string(ep) != c.Endpoint {
				return fmt.Errorf("put %s: %w: psk identity %q already belongs to endpoint %q", cb.what, store.ErrExists, c.Identity, ep)
			}
		}
		var old store.Credential
		if getJSON(b, []byte(c.Endpoint), &old) == nil && old.Identity != "" {
			if err := idx.Delete([]byte(old.Identity)); err != nil {
				return err
			}
		}
		if c.Identity != "" {
			if err := idx.Put([]byte(c.Identity), []byte(c.Endpoint)); err != nil {
				return err
			}
		}
		return putJSON(b, []byte(c.Endpoint), c)
	})
}

func (cb credentialBuckets) delete(db *bbolt.DB, endpoint string) error {
	return db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(cb.creds)
		var old store.Credential
		if err := getJSON(b, []byte(endpoint), &old); err != nil {
			return err
		}
		if old.Identity != "" {
			if err := tx.Bucket(cb.idx).Delete([]byte(old.Identity)); err != nil {
				return err
			}
		}
		return b.Delete([]byte(endpoint))
	})
}

func (cb credentialBuckets) byIdentity(db *bbolt.DB, identity string) (store.Credential, error) {
	var c store.Credential
	err := db.View(func(tx *bbolt.Tx) error {
		ep := tx.Bucket(cb.idx).Get([]byte(identity))
		if ep == nil {
			return fmt.Errorf("%w: psk identity %q", store.ErrNotFound, identity)
		}
		return getJSON(tx.Bucket(cb.creds), bytes.Clone(ep), &c)
	})
	return c, err
}

// PutCredential implements store.CredentialStore.
func (s *Store) PutCredential(c store.Credential) error { return dmCredentials.put(s.db, c) }

// DeleteCredential implements store.CredentialStore.
func (s *Store) DeleteCredential(endpoint string) error { return dmCredentials.delete(s.db, endpoint) }

// Credential implements store.CredentialStore.
func (s *Store) Credential(endpoint string) (store.Credential, error) {
	return get[store.Credential](s.db, bucketCredentials, endpoint)
}

// CredentialByIdentity implements store.CredentialStore.
func (s *Store) CredentialByIdentity(identity string) (store.Credential, error) {
	return dmCredentials.byIdentity(s.db, identity)
}

// Credentials implements store.CredentialStore.
func (s *Store) Credentials() ([]store.Credential, error) {
	return all[store.Credential](s.db, bucketCredentials)
}

// PutObservation implements store.ObservationStore.
func (s *Store) PutObservation(o store.Observation) error {
	if len(o.Token) == 0 {
		return errors.New("put observation: empty token")
	}
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bucketObservations).Put(o.Token, data) })
}

// DeleteObservation implements store.ObservationStore.
func (s *Store) DeleteObservation(token []byte) error {
	return s.db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(bucketObservations).Delete(token) })
}

// Observations implements store.ObservationStore.
func (s *Store) Observations() ([]store.Observation, error) {
	return all[store.Observation](s.db, bucketObservations)
}
