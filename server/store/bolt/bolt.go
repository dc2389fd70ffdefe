// Package bolt is the default store backend: all of the server's durable
// state in one bbolt file (one backup, one unit of crash consistency).
// Every write is one bbolt transaction, committed with fsync before the
// call returns; a write cut by a crash is not visible at all. It is the
// only package of the module that imports bbolt.
//
// Layout (bucket: key -> value; values are JSON of the store records):
//
//	registrations            registration ID -> Registration
//	registration_endpoints   endpoint -> ID, security, queue (index of registrations, device.go)
//	credentials              endpoint -> Credential
//	psk_identities           PSK identity -> endpoint (index of credentials)
//	observations             token -> Observation
//	settings                 name -> raw bytes
//	bootstrap_configs        endpoint -> BootstrapConfig
//	bootstrap_credentials    endpoint -> Credential
//	bootstrap_psk_identities PSK identity -> endpoint
//	fw_images                image ID -> Image
//	fw_packages              package ID -> Package
//	fw_types                 device type -> DeviceProfile
//	fw_blob_index            SHA-256 hex -> blobEntry (chunk bucket, size)
//	fw_chunks                chunk bucket name -> bucket: 8-byte index -> chunk
//	apps                     app ID -> App (its bytes a blob of fw_blob_index)
//	campaigns                campaign ID -> Campaign
//	campaign_devices         campaign ID -> bucket: endpoint -> CampaignDevice
//	device_history           endpoint -> bucket: 8-byte sequence -> HistoryEntry
//	audit                    8-byte sequence -> AuditEntry
//	domains, tokens, token_hashes, owners: see domain.go
//
// The names and shapes are those the server used before its store was one
// package, so a file written then opens unchanged; only firmware blobs, then
// whole values in fw_blobs, are rewritten into chunks on the first open
// (migrate.go), and the endpoint index of registrations is built from them
// when a file has none.
package bolt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/fotastack/fota/server/store"
)

var (
	bucketRegistrations = []byte("registrations")
	bucketRegEndpoints  = []byte("registration_endpoints")
	bucketCredentials   = []byte("credentials")
	bucketPSKIdentities = []byte("psk_identities")
	bucketObservations  = []byte("observations")
	bucketSettings      = []byte("settings")

	bucketBSConfigs       = []byte("bootstrap_configs")
	bucketBSCredentials   = []byte("bootstrap_credentials")
	bucketBSPSKIdentities = []byte("bootstrap_psk_identities")

	bucketFwImages    = []byte("fw_images")
	bucketFwPackages  = []byte("fw_packages")
	bucketFwTypes     = []byte("fw_types")
	bucketFwBlobIndex = []byte("fw_blob_index")
	bucketFwChunks    = []byte("fw_chunks")

	bucketApps = []byte("apps")

	bucketCampaigns       = []byte("campaigns")
	bucketCampaignDevices = []byte("campaign_devices")

	bucketHistory = []byte("device_history")
	bucketAudit   = []byte("audit")
)

var allBuckets = [][]byte{
	bucketRegistrations, bucketRegEndpoints, bucketCredentials, bucketPSKIdentities, bucketObservations, bucketSettings,
	bucketBSConfigs, bucketBSCredentials, bucketBSPSKIdentities,
	bucketFwImages, bucketFwPackages, bucketFwTypes, bucketFwBlobIndex, bucketFwChunks,
	bucketApps,
	bucketCampaigns, bucketCampaignDevices,
	bucketHistory, bucketAudit,
	bucketDomains, bucketTokens, bucketTokenHashes, bucketOwners,
}

// Store is the bbolt implementation of store.Store: one file, one writer
// process (a second process that opens the file waits one second, then
// fails).
type Store struct {
	db *bbolt.DB
	// Migrated is what Open converted from an older layout ("" if
	// nothing); the caller logs it.
	Migrated string
}

var _ store.Store = (*Store)(nil)

// Open opens (or creates) the database file at path, creates missing
// buckets and migrates an older layout (see Migrated). It fails after one
// second if another process holds the file.
func Open(path string) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: time.Second,
		// The freelist is not written at every commit (one page write
		// less per transaction; etcd runs bbolt this way): bbolt rebuilds
		// it by scanning the file when it opens it. Durability is
		// unchanged, every commit is still synced.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another process (a running fota server?) holds the file; stop it or use another --db", path)
		}
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("open store %s: not writable by this user (the server writes every change to it): check the file's owner and mode, or use another --db", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
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
	s := &Store{db: db}
	if s.Migrated, err = s.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	if err := s.dropUnfinishedBlobs(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database file.
func (s *Store) Close() error { return s.db.Close() }

func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// getJSON decodes the record at key into v, or returns store.ErrNotFound.
func getJSON(b *bbolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return fmt.Errorf("%w: %q", store.ErrNotFound, key)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	return nil
}

// get reads one record in a read transaction.
func get[T any](db *bbolt.DB, bucket []byte, key string) (T, error) {
	var x T
	err := db.View(func(tx *bbolt.Tx) error { return getJSON(tx.Bucket(bucket), []byte(key), &x) })
	return x, err
}

// forEach decodes every record of a bucket (nested buckets are skipped).
func forEach[T any](b *bbolt.Bucket, fn func(k []byte, x T) error) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil
		}
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return fmt.Errorf("decode %q: %w", k, err)
		}
		return fn(k, x)
	})
}

// all returns every record of a bucket.
func all[T any](db *bbolt.DB, bucket []byte) ([]T, error) {
	var out []T
	err := db.View(func(tx *bbolt.Tx) error {
		return forEach(tx.Bucket(bucket), func(_ []byte, x T) error {
			out = append(out, x)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	return out, nil
}

// Setting implements store.SettingStore.
func (s *Store) Setting(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketSettings).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("%w: setting %q", store.ErrNotFound, key)
		}
		out = append([]byte(nil), v...) // bbolt's slice is valid only inside the transaction
		return nil
	})
	return out, err
}

// PutSetting implements store.SettingStore.
func (s *Store) PutSetting(key string, value []byte) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketSettings).Put([]byte(key), value) })
}
