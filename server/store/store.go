// Package store keeps the server's durable state behind interfaces, one per
// kind of record: registrations, device credentials, observations and
// settings (device management), bootstrap configurations and bootstrap
// credentials, firmware images, packages, device profiles and their bytes
// (blobs), campaigns and their per-device state, each device's history and
// the audit trail of the API. Each part of the server takes the interfaces
// it needs; Store is all of them, what one backend implements. server/store/bolt is the default backend (one bbolt file);
// server/store/storetest is the conformance suite every backend runs.
//
// This package imports nothing of ours: the records are plain data, and the
// rules that give them meaning (validation, waves, Block2) live in the parts
// that own them.
//
// Guarantees of every implementation, checked by storetest:
//   - Each Put, Add or Delete is atomic: a reader sees the old or the new
//     state, never a mix, even when one call writes several records
//     (DeleteImage, PutCampaign, DeleteRegistration).
//   - A call that returned nil has reached stable storage and survives a
//     crash; nothing spans two calls, so a crash between two calls keeps the
//     first and loses the second.
//   - Lookups of a key that is not stored return an error that wraps
//     ErrNotFound; adding a key that must be new returns one that wraps
//     ErrExists.
//   - Calls are safe from many goroutines at once.
//   - Records come back equal to what was put (times at the precision of
//     time.Time's JSON form, byte slices nil or empty alike).
package store

import (
	"errors"
)

// ErrNotFound is returned (wrapped) by lookups of a key that is not stored.
var ErrNotFound = errors.New("store: not found")

// ErrExists is returned (wrapped) when a record that must be new is already
// stored, or a unique value (a PSK identity) already belongs to another key.
var ErrExists = errors.New("store: already exists")

// Store is everything one backend keeps: the union of the interfaces the
// server's parts take.
type Store interface {
	RegistrationStore
	CredentialStore
	ObservationStore
	SettingStore
	BootstrapStore
	FirmwareStore
	AppStore
	CampaignStore
	HistoryStore
	AuditStore
	DomainStore

	// Close releases the store. Calls after Close fail.
	Close() error
}
