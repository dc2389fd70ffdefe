package bolt

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/fotastack/fota/server/store"
)

// AddImage implements store.FirmwareStore.
func (s *Store) AddImage(img store.Image) (store.Image, error) {
	if img.ID == "" {
		return store.Image{}, errors.New("add image: empty id")
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		ib := tx.Bucket(bucketFwImages)
		if ib.Get([]byte(img.ID)) != nil {
			return fmt.Errorf("%w: image %s", store.ErrExists, img.ID)
		}
		if tx.Bucket(bucketFwBlobIndex).Get([]byte(img.SHA256)) == nil {
			return fmt.Errorf("add image %s: %w: blob %s", img.ID, store.ErrNotFound, img.SHA256)
		}
		if img.SeqNo == 0 {
			var seq uint32
			err := forEach(ib, func(_ []byte, o store.Image) error {
				if o.DeviceType == img.DeviceType && o.SeqNo > seq {
					seq = o.SeqNo
				}
				return nil
			})
			if err != nil {
				return err
			}
			img.SeqNo = seq + 1
		}
		return putJSON(ib, []byte(img.ID), img)
	})
	if err != nil {
		return store.Image{}, err
	}
	return img, nil
}

// Image implements store.FirmwareStore.
func (s *Store) Image(id string) (store.Image, error) {
	return get[store.Image](s.db, bucketFwImages, id)
}

// Images implements store.FirmwareStore.
func (s *Store) Images() ([]store.Image, error) { return all[store.Image](s.db, bucketFwImages) }

// DeleteImage implements store.FirmwareStore.
func (s *Store) DeleteImage(id string) ([]string, error) {
	var dropped []string
	err := s.db.Update(func(tx *bbolt.Tx) error {
		dropped = nil
		ib, pb := tx.Bucket(bucketFwImages), tx.Bucket(bucketFwPackages)
		var img store.Image
		if err := getJSON(ib, []byte(id), &img); err != nil {
			return err
		}
		if err := ib.Delete([]byte(id)); err != nil {
			return err
		}
		var dead []store.Package
		err := forEach(pb, func(_ []byte, p store.Package) error {
			if p.FromImage == id || p.ToImage == id {
				dead = append(dead, p)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range dead {
			if err := pb.Delete([]byte(p.ID)); err != nil {
				return err
			}
			dropped = append(dropped, p.ID)
			if err := dropBlobIfUnused(tx, p.SHA256); err != nil {
				return err
			}
		}
		return dropBlobIfUnused(tx, img.SHA256)
	})
	return dropped, err
}

// dropBlobIfUnused deletes a blob no image, package or app refers to.
func dropBlobIfUnused(tx *bbolt.Tx, sum string) error {
	type ref struct {
		SHA256 string `json:"sha256"`
	}
	used := errors.New("used")
	check := func(_ []byte, r ref) error {
		if r.SHA256 == sum {
			return used // stops the walk
		}
		return nil
	}
	for _, b := range [][]byte{bucketFwImages, bucketFwPackages, bucketApps} {
		if err := forEach(tx.Bucket(b), check); err == used {
			return nil
		} else if err != nil {
			return err
		}
	}
	return deleteBlob(tx, sum)
}

// PutPackage implements store.FirmwareStore.
func (s *Store) PutPackage(p store.Package) (store.Package, error) {
	if p.ID == "" {
		return store.Package{}, errors.New("put package: empty id")
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bucketFwPackages)
		if pb.Get([]byte(p.ID)) != nil {
			return getJSON(pb, []byte(p.ID), &p)
		}
		if tx.Bucket(bucketFwBlobIndex).Get([]byte(p.SHA256)) == nil {
			return fmt.Errorf("put package %s: %w: blob %s", p.ID, store.ErrNotFound, p.SHA256)
		}
		return putJSON(pb, []byte(p.ID), p)
	})
	if err != nil {
		return store.Package{}, err
	}
	return p, nil
}

// Package implements store.FirmwareStore.
func (s *Store) Package(id string) (store.Package, error) {
	return get[store.Package](s.db, bucketFwPackages, id)
}

// Packages implements store.FirmwareStore.
func (s *Store) Packages() ([]store.Package, error) {
	return all[store.Package](s.db, bucketFwPackages)
}

// PutProfile implements store.FirmwareStore.
func (s *Store) PutProfile(p store.DeviceProfile) error {
	if p.DeviceType == "" {
		return errors.New("put profile: empty device type")
	}
	return s.db.Update(func(tx *bbolt.Tx) error { return putJSON(tx.Bucket(bucketFwTypes), []byte(p.DeviceType), p) })
}

// Profile implements store.FirmwareStore.
func (s *Store) Profile(deviceType string) (store.DeviceProfile, error) {
	return get[store.DeviceProfile](s.db, bucketFwTypes, deviceType)
}

// Blobs are kept in chunks, each chunk a bbolt value, so that neither
// writing nor reading one needs it whole in memory: PutBlob commits a
// transaction every chunksPerTx chunks (bbolt holds a transaction's dirty
// pages in memory until it commits), and ReadAt copies only the chunks a
// range touches. A blob's chunks sit in a bucket of fw_chunks named by a
// random ID; fw_blob_index maps its SHA-256 to that bucket and is written
// last, in the transaction that makes the blob visible. A chunk bucket
// without an index entry is an upload cut by a crash: Open drops it.
const (
	chunkSize   = 64 << 10
	chunksPerTx = 16
)

// blobEntry is the fw_blob_index record of one blob.
type blobEntry struct {
	Chunks string `json:"chunks"` // bucket in fw_chunks
	Size   int64  `json:"size"`
}

func chunkKey(i int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// PutBlob implements store.BlobStore.
func (s *Store) PutBlob(r io.Reader, limit int64) (string, int64, error) {
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return "", 0, err
	}
	name := []byte(hex.EncodeToString(id))
	h := sha256.New()
	var size, n int64
	buf := make([]byte, chunkSize)
	abandon := func(err error) (string, int64, error) {
		_ = s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketFwChunks).DeleteBucket(name) })
		return "", 0, err
	}
	for eof := false; !eof; {
		// Read up to chunksPerTx chunks, then write them in one transaction.
		var chunks [][]byte
		for len(chunks) < chunksPerTx {
			k, err := io.ReadFull(r, buf)
			if k > 0 {
				size += int64(k)
				if size > limit {
					return abandon(fmt.Errorf("blob larger than %d bytes", limit))
				}
				h.Write(buf[:k])
				chunks = append(chunks, bytes.Clone(buf[:k]))
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				eof = true
				break
			}
			if err != nil {
				return abandon(fmt.Errorf("read blob: %w", err))
			}
		}
		err := s.db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.Bucket(bucketFwChunks).CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			for i, c := range chunks {
				if err := b.Put(chunkKey(n+int64(i)), c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return abandon(fmt.Errorf("write blob: %w", err))
		}
		n += int64(len(chunks))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	err := s.db.Update(func(tx *bbolt.Tx) error {
		idx := tx.Bucket(bucketFwBlobIndex)
		if idx.Get([]byte(sum)) != nil {
			// Already stored: keep the first copy.
			return tx.Bucket(bucketFwChunks).DeleteBucket(name)
		}
		return putJSON(idx, []byte(sum), blobEntry{Chunks: string(name), Size: size})
	})
	if err != nil {
		return abandon(fmt.Errorf("index blob: %w", err))
	}
	return sum, size, nil
}

func deleteBlob(tx *bbolt.Tx, sum string) error {
	idx := tx.Bucket(bucketFwBlobIndex)
	var e blobEntry
	if err := getJSON(idx, []byte(sum), &e); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if err := tx.Bucket(bucketFwChunks).DeleteBucket([]byte(e.Chunks)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	return idx.Delete([]byte(sum))
}

// dropUnfinishedBlobs removes chunk buckets no index entry names: uploads
// a crash cut short.
func (s *Store) dropUnfinishedBlobs() error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		named := map[string]bool{}
		err := forEach(tx.Bucket(bucketFwBlobIndex), func(_ []byte, e blobEntry) error {
			named[e.Chunks] = true
			return nil
		})
		if err != nil {
			return err
		}
		cb := tx.Bucket(bucketFwChunks)
		var dead [][]byte
		err = cb.ForEachBucket(func(k []byte) error {
			if !named[string(k)] {
				dead = append(dead, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := cb.DeleteBucket(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// OpenBlob implements store.BlobStore.
func (s *Store) OpenBlob(sum string) (store.Blob, error) {
	e, err := get[blobEntry](s.db, bucketFwBlobIndex, sum)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", sum, err)
	}
	return &blob{db: s.db, bucket: []byte(e.Chunks), size: e.Size}, nil
}

type blob struct {
	db     *bbolt.DB
	bucket []byte
	size   int64
}

func (b *blob) Size() int64 { return b.size }

// ReadAt implements io.ReaderAt over the blob's chunks, in one read
// transaction.
func (b *blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("blob: negative offset")
	}
	if off >= b.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := b.size - off; int64(want) > rest {
		want = int(rest)
	}
	n := 0
	err := b.db.View(func(tx *bbolt.Tx) error {
		cb := tx.Bucket(bucketFwChunks).Bucket(b.bucket)
		if cb == nil {
			return fmt.Errorf("blob: %w: chunks deleted", store.ErrNotFound)
		}
		for n < want {
			pos := off + int64(n)
			c := cb.Get(chunkKey(pos / chunkSize))
			in := int(pos % chunkSize)
			if c == nil || in >= len(c) {
				return fmt.Errorf("blob: chunk %d missing", pos/chunkSize)
			}
			n += copy(p[n:want], c[in:])
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
