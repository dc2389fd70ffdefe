package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
)

const (
	// chunkSize is the size of one row of fw_chunks: a Block2 read of
	// 1 KiB touches one row, and a row stays far below PostgreSQL's 1 GB
	// field limit and its TOAST sweet spot.
	chunkSize = 64 << 10
	// chunksPerTx bounds one transaction of PutBlob (1 MiB): an upload of
	// any size holds no transaction open for long.
	chunksPerTx = 16
)

// lockBlob takes a share lock on the fw_blobs row of sum (so DeleteImage,
// which locks it for update, cannot remove the blob under an image or
// package being added for it), or returns ErrNotFound.
func lockBlob(ctx context.Context, tx pgx.Tx, sum, what string) error {
	var one int
	err := tx.QueryRow(ctx, "SELECT 1 FROM fw_blobs WHERE sha256 = $1 FOR SHARE", sum).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w: blob %s (store its bytes first)", what, store.ErrNotFound, sum)
	}
	if err != nil {
		return fmt.Errorf("%s: read blob %s: %w", what, sum, err)
	}
	return nil
}

// AddImage implements store.FirmwareStore. The SeqNo is chosen under a
// transaction-scoped advisory lock per device type, so two uploads at once,
// on one node or two, never share a number.
func (s *Store) AddImage(img store.Image) (store.Image, error) {
	if img.ID == "" {
		return store.Image{}, errors.New("add image: empty id")
	}
	what := "add image " + img.ID
	err := s.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('fota image seqno ' || coalesce(current_schema(), '') || ' ' || $1))", img.DeviceType); err != nil {
			return fmt.Errorf("%s: lock device type %q: %w", what, img.DeviceType, err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM fw_images WHERE id = $1)", img.ID).Scan(&exists); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if exists {
			return fmt.Errorf("%w: image %s", store.ErrExists, img.ID)
		}
		if err := lockBlob(ctx, tx, img.SHA256, what); err != nil {
			return err
		}
		if img.SeqNo == 0 {
			var top int64
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq_no), 0) FROM fw_images WHERE device_type = $1", img.DeviceType).Scan(&top); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			img.SeqNo = uint32(top + 1)
		}
		data, err := json.Marshal(img)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO fw_images (id, device_type, version, sha256, seq_no, record) VALUES ($1, $2, $3, $4, $5, $6)`,
			img.ID, img.DeviceType, img.Version, img.SHA256, int64(img.SeqNo), data)
		if isUniqueViolation(err) {
			// Another node added the same ID under another device type's lock.
			return fmt.Errorf("%w: image %s", store.ErrExists, img.ID)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	if err != nil {
		return store.Image{}, err
	}
	return img, nil
}

// Image implements store.FirmwareStore.
func (s *Store) Image(id string) (store.Image, error) {
	c, cancel := ctx()
	defer cancel()
	var img store.Image
	err := getJSON(c, s.pool, &img, "image "+id, "SELECT record FROM fw_images WHERE id = $1", id)
	return img, err
}

// Images implements store.FirmwareStore.
func (s *Store) Images() ([]store.Image, error) {
	return list[store.Image](s, "images", "SELECT record FROM fw_images")
}

// DeleteImage implements store.FirmwareStore: the image, its packages and
// the blobs left unused go in one transaction. Each candidate blob is
// locked for update before its users are counted, so an image or package
// being added for it (which holds a share lock) is either counted or finds
// the blob gone.
func (s *Store) DeleteImage(id string) ([]string, error) {
	var dropped []string
	err := s.tx(func(ctx context.Context, tx pgx.Tx) error {
		var sum string
		err := tx.QueryRow(ctx, "DELETE FROM fw_images WHERE id = $1 RETURNING sha256", id).Scan(&sum)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: image %s", store.ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("delete image %s: %w", id, err)
		}
		sums := []string{sum}
		rows, err := tx.Query(ctx, "DELETE FROM fw_packages WHERE from_image = $1 OR to_image = $1 RETURNING id, sha256", id)
		if err != nil {
			return fmt.Errorf("delete packages of image %s: %w", id, err)
		}
		for rows.Next() {
			var pid, psum string
			if err := rows.Scan(&pid, &psum); err != nil {
				rows.Close()
				return fmt.Errorf("delete packages of image %s: %w", id, err)
			}
			dropped = append(dropped, pid)
			sums = append(sums, psum)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("delete packages of image %s: %w", id, err)
		}
		for _, sum := range sums {
			var blobID int64
			err := tx.QueryRow(ctx, "SELECT blob_id FROM fw_blobs WHERE sha256 = $1 FOR UPDATE", sum).Scan(&blobID)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // gone already (two packages of the same bytes)
			}
			if err != nil {
				return fmt.Errorf("delete image %s: lock blob %s: %w", id, sum, err)
			}
			var used bool
			err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM fw_images WHERE sha256 = $1)
				OR EXISTS (SELECT 1 FROM fw_packages WHERE sha256 = $1)
				OR EXISTS (SELECT 1 FROM apps WHERE sha256 = $1)`, sum).Scan(&used)
			if err != nil {
				return fmt.Errorf("delete image %s: users of blob %s: %w", id, sum, err)
			}
			if used {
				continue
			}
			if _, err := tx.Exec(ctx, "DELETE FROM fw_blobs WHERE sha256 = $1", sum); err != nil {
				return fmt.Errorf("delete image %s: blob %s: %w", id, sum, err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM fw_chunks WHERE blob_id = $1", blobID); err != nil {
				return fmt.Errorf("delete image %s: chunks of blob %s: %w", id, sum, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dropped, nil
}

// PutPackage implements store.FirmwareStore: INSERT ... ON CONFLICT DO
// NOTHING, then the stored row, so the first of two makers wins on any node.
func (s *Store) PutPackage(p store.Package) (store.Package, error) {
	if p.ID == "" {
		return store.Package{}, errors.New("put package: empty id")
	}
	what := "put package " + p.ID
	data, err := json.Marshal(p)
	if err != nil {
		return store.Package{}, fmt.Errorf("%s: %w", what, err)
	}
	var stored store.Package
	err = s.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := lockBlob(ctx, tx, p.SHA256, what); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO fw_packages (id, kind, from_image, to_image, sha256, record) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO NOTHING`, p.ID, p.Kind, p.FromImage, p.ToImage, p.SHA256, data)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return getJSON(ctx, tx, &stored, "package "+p.ID, "SELECT record FROM fw_packages WHERE id = $1", p.ID)
	})
	if err != nil {
		return store.Package{}, err
	}
	return stored, nil
}

// Package implements store.FirmwareStore.
func (s *Store) Package(id string) (store.Package, error) {
	c, cancel := ctx()
	defer cancel()
	var p store.Package
	err := getJSON(c, s.pool, &p, "package "+id, "SELECT record FROM fw_packages WHERE id = $1", id)
	return p, err
}

// Packages implements store.FirmwareStore.
func (s *Store) Packages() ([]store.Package, error) {
	return list[store.Package](s, "packages", "SELECT record FROM fw_packages")
}

// PutProfile implements store.FirmwareStore.
func (s *Store) PutProfile(p store.DeviceProfile) error {
	if p.DeviceType == "" {
		return errors.New("put profile: empty device type")
	}
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("put profile %s: %w", p.DeviceType, err)
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO fw_profiles (device_type, record) VALUES ($1, $2)
			ON CONFLICT (device_type) DO UPDATE SET record = excluded.record`, p.DeviceType, data)
		if err != nil {
			return fmt.Errorf("put profile %s: %w", p.DeviceType, err)
		}
		return nil
	})
}

// Profile implements store.FirmwareStore.
func (s *Store) Profile(deviceType string) (store.DeviceProfile, error) {
	c, cancel := ctx()
	defer cancel()
	var p store.DeviceProfile
	err := getJSON(c, s.pool, &p, "profile of device type "+deviceType, "SELECT record FROM fw_profiles WHERE device_type = $1", deviceType)
	return p, err
}

// PutBlob implements store.BlobStore. The chunks are written under a fresh
// blob_id in transactions of chunksPerTx chunks as they are read; the
// fw_blobs row that names them is written last, in its own transaction, so
// until then nothing of the blob is visible. An upload that fails removes
// its chunks; one cut by a crash leaves chunks no fw_blobs row names, still listed
// in fw_uploads, which a later Open removes (dropUnfinishedBlobs).
func (s *Store) PutBlob(r io.Reader, limit int64) (string, int64, error) {
	var blobID int64
	err := s.tx(func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, "INSERT INTO fw_uploads (blob_id) VALUES (nextval('fw_blob_ids')) RETURNING blob_id").Scan(&blobID)
	})
	if err != nil {
		return "", 0, fmt.Errorf("put blob: begin upload: %w", err)
	}
	abandon := func(err error) (string, int64, error) {
		_ = s.tx(func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "DELETE FROM fw_chunks WHERE blob_id = $1", blobID); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DELETE FROM fw_uploads WHERE blob_id = $1", blobID)
			return err
		})
		return "", 0, err
	}
	h := sha256.New()
	var size int64
	idx := 0
	buf := make([]byte, chunkSize)
	for eof := false; !eof; {
		var chunks [][]byte
		for len(chunks) < chunksPerTx {
			k, err := io.ReadFull(r, buf)
			if k > 0 {
				size += int64(k)
				if size > limit {
					return abandon(fmt.Errorf("put blob: larger than %d bytes", limit))
				}
				h.Write(buf[:k])
				chunks = append(chunks, append([]byte(nil), buf[:k]...))
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				eof = true
				break
			}
			if err != nil {
				return abandon(fmt.Errorf("put blob: read: %w", err))
			}
		}
		if len(chunks) == 0 {
			break
		}
		err := s.tx(func(ctx context.Context, tx pgx.Tx) error {
			var b pgx.Batch
			for i, c := range chunks {
				b.Queue("INSERT INTO fw_chunks (blob_id, idx, bytes) VALUES ($1, $2, $3)", blobID, idx+i, c)
			}
			return tx.SendBatch(ctx, &b).Close()
		})
		if err != nil {
			return abandon(fmt.Errorf("put blob: write chunks: %w", err))
		}
		idx += len(chunks)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	err = s.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM fw_uploads WHERE blob_id = $1", blobID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "INSERT INTO fw_blobs (sha256, blob_id, size) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING", sum, blobID, size)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			// The same bytes are stored already: keep the first copy.
			_, err = tx.Exec(ctx, "DELETE FROM fw_chunks WHERE blob_id = $1", blobID)
		}
		return err
	})
	if err != nil {
		return abandon(fmt.Errorf("put blob %s: index: %w", sum, err))
	}
	return sum, size, nil
}

// dropUnfinishedBlobs removes the chunks of uploads a crash cut short:
// those fw_uploads still names a day after they began. Not at once: an
// upload may be running on another node, and no node can tell a dead
// upload from a slow one but by its age.
func (s *Store) dropUnfinishedBlobs(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `WITH dead AS (
				DELETE FROM fw_uploads WHERE started < now() - interval '1 day' RETURNING blob_id)
			DELETE FROM fw_chunks WHERE blob_id IN (SELECT blob_id FROM dead)`)
		return err
	})
}

// OpenBlob implements store.BlobStore.
func (s *Store) OpenBlob(sum string) (store.Blob, error) {
	c, cancel := ctx()
	defer cancel()
	b := &blob{s: s, sum: sum}
	err := s.pool.QueryRow(c, "SELECT blob_id, size FROM fw_blobs WHERE sha256 = $1", sum).Scan(&b.id, &b.size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: blob %s", store.ErrNotFound, sum)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", sum, err)
	}
	return b, nil
}

// blob reads a stored blob by range: each ReadAt fetches only the chunks
// the range touches, in one query.
type blob struct {
	s    *Store
	sum  string
	id   int64
	size int64
}

func (b *blob) Size() int64 { return b.size }

func (b *blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("read blob: negative offset")
	}
	if off >= b.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), b.size)
	if end == off {
		return 0, nil
	}
	first, last := off/chunkSize, (end-1)/chunkSize
	c, cancel := ctx()
	defer cancel()
	rows, err := b.s.pool.Query(c, "SELECT idx, bytes FROM fw_chunks WHERE blob_id = $1 AND idx BETWEEN $2 AND $3 ORDER BY idx", b.id, first, last)
	if err != nil {
		return 0, fmt.Errorf("read blob %s: %w", b.sum, err)
	}
	defer rows.Close()
	n := 0
	want := first
	for rows.Next() {
		var idx int64
		var data []byte
		if err := rows.Scan(&idx, &data); err != nil {
			return n, fmt.Errorf("read blob %s: %w", b.sum, err)
		}
		if idx != want {
			return n, fmt.Errorf("read blob %s: chunk %d missing", b.sum, want)
		}
		start := off + int64(n) - idx*chunkSize
		n += copy(p[n:end-off], data[start:])
		want++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read blob %s: %w", b.sum, err)
	}
	if want == first {
		// The blob was deleted (DeleteImage) after it was opened.
		return 0, fmt.Errorf("read blob %s: %w: its chunks were deleted", b.sum, store.ErrNotFound)
	}
	if want != last+1 {
		return n, fmt.Errorf("read blob %s: chunk %d missing", b.sum, want)
	}
	if end == b.size && n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
