package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
)

// AddApp implements store.AppStore. The blob is share-locked (lockBlob) so
// a DeleteImage or DeleteApp at once cannot remove it under the new row;
// the primary key and UNIQUE (name, version) keep two nodes from adding
// the same app.
func (s *Store) AddApp(a store.App) (store.App, error) {
	if a.ID == "" || a.Name == "" {
		return store.App{}, errors.New("add app: empty id or name")
	}
	what := "add app " + a.ID
	data, err := json.Marshal(a)
	if err != nil {
		return store.App{}, fmt.Errorf("%s: %w", what, err)
	}
	err = s.tx(func(ctx context.Context, tx pgx.Tx) error {
		if err := lockBlob(ctx, tx, a.SHA256, what); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO apps (id, name, version, sha256, record) VALUES ($1, $2, $3, $4, $5)`,
			a.ID, a.Name, a.Version, a.SHA256, data)
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: app %s version %s", store.ErrExists, a.Name, a.Version)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	if err != nil {
		return store.App{}, err
	}
	return a, nil
}

// App implements store.AppStore.
func (s *Store) App(id string) (store.App, error) {
	c, cancel := ctx()
	defer cancel()
	var a store.App
	err := getJSON(c, s.pool, &a, "app "+id, "SELECT record FROM apps WHERE id = $1", id)
	return a, err
}

// Apps implements store.AppStore.
func (s *Store) Apps() ([]store.App, error) {
	return list[store.App](s, "apps", "SELECT record FROM apps")
}

// DeleteApp implements store.AppStore: the row and, if nothing else uses
// it, its blob, in one transaction (the blob locked for update before its
// users are counted, as DeleteImage does).
func (s *Store) DeleteApp(id string) error {
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		var sum string
		err := tx.QueryRow(ctx, "DELETE FROM apps WHERE id = $1 RETURNING sha256", id).Scan(&sum)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: app %s", store.ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("delete app %s: %w", id, err)
		}
		return dropBlobIfUnused(ctx, tx, sum, "delete app "+id)
	})
}

// dropBlobIfUnused removes the blob sum and its chunks when no image,
// package or app refers to it. The caller's transaction has removed its
// own reference.
func dropBlobIfUnused(ctx context.Context, tx pgx.Tx, sum, what string) error {
	var blobID int64
	err := tx.QueryRow(ctx, "SELECT blob_id FROM fw_blobs WHERE sha256 = $1 FOR UPDATE", sum).Scan(&blobID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: lock blob %s: %w", what, sum, err)
	}
	var used bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM fw_images WHERE sha256 = $1)
		OR EXISTS (SELECT 1 FROM fw_packages WHERE sha256 = $1)
		OR EXISTS (SELECT 1 FROM apps WHERE sha256 = $1)`, sum).Scan(&used)
	if err != nil {
		return fmt.Errorf("%s: users of blob %s: %w", what, sum, err)
	}
	if used {
		return nil
	}
	if _, err := tx.Exec(ctx, "DELETE FROM fw_blobs WHERE sha256 = $1", sum); err != nil {
		return fmt.Errorf("%s: blob %s: %w", what, sum, err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM fw_chunks WHERE blob_id = $1", blobID); err != nil {
		return fmt.Errorf("%s: chunks of blob %s: %w", what, sum, err)
	}
	return nil
}
