package bolt

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// bucketFwBlobsV0 held each firmware blob whole, one value per SHA-256,
// before blobs were chunked: a file written by a server of that time still
// has it.
var bucketFwBlobsV0 = []byte("fw_blobs")

// migrate brings a file written by an earlier release to the current
// layout and says what it did ("" when nothing).
func (s *Store) migrate() (string, error) {
	var did []string
	for _, step := range []func() (string, error){s.indexRegistrations, s.chunkBlobs} {
		what, err := step()
		if err != nil {
			return "", err
		}
		if what != "" {
			did = append(did, what)
		}
	}
	return strings.Join(did, "; "), nil
}

// indexRegistrations builds the endpoint index of registrations in a file
// written before it existed, in one transaction: the index is complete or
// absent, never partial.
func (s *Store) indexRegistrations() (string, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		idx := tx.Bucket(bucketRegEndpoints)
		if k, _ := idx.Cursor().First(); k != nil {
			return nil
		}
		return forEach(tx.Bucket(bucketRegistrations), func(_ []byte, r store.Registration) error {
			n++
			return idx.Put([]byte(r.Endpoint), regIndexValue(r))
		})
	})
	if err != nil || n == 0 {
		return "", err
	}
	return fmt.Sprintf("endpoint index of %d registrations built", n), nil
}

// chunkBlobs rewrites whole-value blobs into chunks. Each blob moves in
// its own transaction (its chunks and index entry in, its old value out),
// so a crash midway leaves every blob readable in one layout or the other
// and the next open goes on.
func (s *Store) chunkBlobs() (string, error) {
	var sums [][]byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		old := tx.Bucket(bucketFwBlobsV0)
		if old == nil {
			return nil
		}
		return old.ForEach(func(k, v []byte) error {
			if v != nil {
				sums = append(sums, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil {
		return "", err
	}
	if sums == nil {
		return "", s.dropEmptyV0()
	}
	var moved int64
	for _, sum := range sums {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			old := tx.Bucket(bucketFwBlobsV0)
			data := old.Get(sum)
			idx := tx.Bucket(bucketFwBlobIndex)
			if idx.Get(sum) == nil {
				id := make([]byte, 12)
				if _, err := rand.Read(id); err != nil {
					return err
				}
				name := []byte(hex.EncodeToString(id))
				b, err := tx.Bucket(bucketFwChunks).CreateBucket(name)
				if err != nil {
					return err
				}
				for i := 0; ; i++ { // one chunk at least, empty for an empty blob
					end := min((i+1)*chunkSize, len(data))
					if err := b.Put(chunkKey(int64(i)), bytes.Clone(data[i*chunkSize:end])); err != nil {
						return err
					}
					if end == len(data) {
						break
					}
				}
				if err := putJSON(idx, sum, blobEntry{Chunks: string(name), Size: int64(len(data))}); err != nil {
					return err
				}
			}
			moved += int64(len(data))
			return old.Delete(sum)
		})
		if err != nil {
			return "", fmt.Errorf("blob %s: %w", sum, err)
		}
	}
	if err := s.dropEmptyV0(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d firmware blobs (%d bytes) rewritten from fw_blobs into chunks", len(sums), moved), nil
}

func (s *Store) dropEmptyV0() error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		if old := tx.Bucket(bucketFwBlobsV0); old != nil && old.Stats().KeyN == 0 {
			return tx.DeleteBucket(bucketFwBlobsV0)
		}
		return nil
	})
}
