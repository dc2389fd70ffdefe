package bolt

import (
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// AddApp implements store.AppStore.
func (s *Store) AddApp(a store.App) (store.App, error) {
	if a.ID == "" || a.Name == "" {
		return store.App{}, errors.New("add app: empty id or name")
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		ab := tx.Bucket(bucketApps)
		if ab.Get([]byte(a.ID)) != nil {
			return fmt.Errorf("%w: app %s", store.ErrExists, a.ID)
		}
		err := forEach(ab, func(_ []byte, o store.App) error {
			if o.Name == a.Name && o.Version == a.Version {
				return fmt.Errorf("%w: app %s version %s", store.ErrExists, a.Name, a.Version)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if tx.Bucket(bucketFwBlobIndex).Get([]byte(a.SHA256)) == nil {
			return fmt.Errorf("add app %s: %w: blob %s", a.ID, store.ErrNotFound, a.SHA256)
		}
		return putJSON(ab, []byte(a.ID), a)
	})
	if err != nil {
		return store.App{}, err
	}
	return a, nil
}

// App implements store.AppStore.
func (s *Store) App(id string) (store.App, error) { return get[store.App](s.db, bucketApps, id) }

// Apps implements store.AppStore.
func (s *Store) Apps() ([]store.App, error) { return all[store.App](s.db, bucketApps) }

// DeleteApp implements store.AppStore.
func (s *Store) DeleteApp(id string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		ab := tx.Bucket(bucketApps)
		var a store.App
		if err := getJSON(ab, []byte(id), &a); err != nil {
			return err
		}
		if err := ab.Delete([]byte(id)); err != nil {
			return err
		}
		return dropBlobIfUnused(tx, a.SHA256)
	})
}
