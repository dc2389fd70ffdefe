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
	return s.db.Batch(func(tx *bbolt.Tx) error {
		b, idx := tx.Bucket(bucketRegistrations), tx.Bucket(bucketRegEndpoints)
		if prev := b.Get([]byte(r.ID)); prev != nil {
			var old store.Registration
			if json.Unmarshal(prev, &old) == nil && old.Endpoint != r.Endpoint {
				if err := unindexRegistration(idx, old); err != nil {
					return err
				}
			}
		}
		if err := idx.Put([]byte(r.Endpoint), regIndexValue(r)); err != nil {
			return err
		}
		return b.Put([]byte(r.ID), data)
	})
}

// The endpoint index (registration_endpoints) maps each endpoint to the
// ID of its registration put last, with the fields RegistrationPage
// filters on, so a page is found by a cursor walk over small values
// without decoding the registrations it skips: "ID \x00 security \x00 0|1".
func regIndexValue(r store.Registration) []byte {
	q := "0"
	if r.Queue {
		q = "1"
	}
	return []byte(r.ID + "\x00" + r.Security + "\x00" + q)
}

// parseRegIndex splits an index value without copying it.
func parseRegIndex(v []byte) (id, security []byte, queue bool) {
	id, rest, _ := bytes.Cut(v, []byte{0})
	security, q, _ := bytes.Cut(rest, []byte{0})
	return id, security, len(q) == 1 && q[0] == '1'
}

// matchIndex is q.Match over an index entry; it allocates nothing, as the
// walk may pass over every endpoint to fill a page.
func matchIndex(q store.RegistrationQuery, k, v []byte) ([]byte, bool) {
	id, sec, queue := parseRegIndex(v)
	if q.Security != "" && string(sec) != q.Security {
		return nil, false
	}
	if q.Queue != nil && queue != *q.Queue {
		return nil, false
	}
	return id, store.ContainsFold(k, q.Search)
}

// unindexRegistration removes the index entry of r's endpoint if it is
// r's: a newer registration of the endpoint keeps its own.
func unindexRegistration(idx *bbolt.Bucket, r store.Registration) error {
	if v := idx.Get([]byte(r.Endpoint)); v != nil {
		if id, _, _ := parseRegIndex(v); string(id) == r.ID {
			return idx.Delete([]byte(r.Endpoint))
		}
	}
	return nil
}

// RegistrationPage implements store.RegistrationStore with a cursor over
// the endpoint index: it seeks to q.After and reads on until the page is
// full, decoding only the registrations it returns.
func (s *Store) RegistrationPage(q store.RegistrationQuery) ([]store.Registration, error) {
	if err := q.Valid(); err != nil {
		return nil, err
	}
	var out []store.Registration
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRegistrations)
		c := tx.Bucket(bucketRegEndpoints).Cursor()
		k, v := c.Seek([]byte(q.After))
		if k != nil && q.After != "" && string(k) == q.After {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < q.Limit; k, v = c.Next() {
			id, ok := matchIndex(q, k, v)
			if !ok {
				continue
			}
			var r store.Registration
			if err := getJSON(b, id, &r); err != nil {
				return fmt.Errorf("endpoint index of %q: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read a page of registrations: %w", err)
	}
	return out, nil
}

// DeleteRegistration implements store.RegistrationStore; the registration
// and its observations go in one transaction.
func (s *Store) DeleteRegistration(id string) error {
	return s.db.Batch(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRegistrations)
		var old store.Registration
		if prev := b.Get([]byte(id)); prev != nil && json.Unmarshal(prev, &old) == nil {
			if err := unindexRegistration(tx.Bucket(bucketRegEndpoints), old); err != nil {
				return err
			}
		}
		if err := b.Delete([]byte(id)); err != nil {
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
