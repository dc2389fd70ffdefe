package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// History and audit entries are keyed by a per-bucket sequence number
// (bbolt's NextSequence), so the oldest are first under the cursor and
// trimming deletes from the front: O(entries dropped), not a count of all.

// AddHistory implements store.HistoryStore. Calls from many goroutines are
// batched into one transaction.
func (s *Store) AddHistory(entries []store.HistoryEntry, keep int) error {
	if keep < 1 {
		return errors.New("add history: keep must be at least 1")
	}
	data := make([][]byte, len(entries))
	for i, e := range entries {
		if e.Endpoint == "" {
			return errors.New("add history: empty endpoint")
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		data[i] = b
	}
	return s.db.Batch(func(tx *bbolt.Tx) error {
		for i, e := range entries {
			b, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(e.Endpoint))
			if err != nil {
				return err
			}
			if err := appendTrimmed(b, data[i], keep); err != nil {
				return err
			}
		}
		return nil
	})
}

// appendTrimmed puts v under the bucket's next sequence number and deletes
// the entries that fall out of the last keep.
func appendTrimmed(b *bbolt.Bucket, v []byte, keep int) error {
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
		return err
	}
	if seq <= uint64(keep) {
		return nil
	}
	cut := binary.BigEndian.AppendUint64(nil, seq-uint64(keep)+1)
	c := b.Cursor()
	for k, _ := c.First(); k != nil && string(k) < string(cut); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// lastN decodes the newest limit values of a bucket, oldest first.
func lastN[T any](b *bbolt.Bucket, limit int) ([]T, error) {
	var out []T
	if b == nil {
		return out, nil
	}
	c := b.Cursor()
	for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, fmt.Errorf("decode %x: %w", k, err)
		}
		out = append(out, x)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// History implements store.HistoryStore.
func (s *Store) History(ep string, limit int) ([]store.HistoryEntry, error) {
	var out []store.HistoryEntry
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		out, err = lastN[store.HistoryEntry](tx.Bucket(bucketHistory).Bucket([]byte(ep)), limit)
		return err
	})
	return out, err
}

// AddAudit implements store.AuditStore.
func (s *Store) AddAudit(a store.AuditEntry, keep int) error {
	if keep < 1 {
		return errors.New("add audit: keep must be at least 1")
	}
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bbolt.Tx) error { return appendTrimmed(tx.Bucket(bucketAudit), data, keep) })
}

// Audit implements store.AuditStore.
func (s *Store) Audit(limit int) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		out, err = lastN[store.AuditEntry](tx.Bucket(bucketAudit), limit)
		return err
	})
	return out, err
}
