// Package store keeps the server's durable state: registrations, device
// credentials, observations and settings. The Store interface is small so
// that a distributed implementation can follow; Bolt is the default, one
// bbolt file.
//
// Guarantees of every implementation: each Put/Delete is atomic (a reader
// sees the old or the new record, never a mix) and has reached stable
// storage when it returns nil. Nothing spans two calls: a crash between
// two calls keeps the first and loses the second.
package store

import (
	"errors"
	"time"
)

// ErrNotFound is returned by lookups of a key that is not stored.
var ErrNotFound = errors.New("store: not found")

// Registration is one registered LwM2M client (LwM2M Core 6.2.1).
type Registration struct {
	ID        string    `json:"id"`
	Endpoint  string    `json:"endpoint"`
	Lifetime  uint32    `json:"lifetime"` // seconds
	Version   string    `json:"version"`  // LwM2M enabler version: 1.0, 1.1, 1.2
	Binding   string    `json:"binding"`  // U, UQ, S, T, N ...
	Queue     bool      `json:"queue"`    // queue mode (Q parameter, or b=UQ in 1.0)
	SMS       string    `json:"sms,omitempty"`
	Links     string    `json:"links"` // the link-format payload as sent
	Address   string    `json:"address"`
	Transport string    `json:"transport"` // "coap" or "coaps"
	Security  string    `json:"security"`  // "none", "psk" or "x509"
	Identity  string    `json:"identity,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
}

// Expires is when the registration ends unless it is updated.
func (r Registration) Expires() time.Time {
	return r.Updated.Add(time.Duration(r.Lifetime) * time.Second)
}

// Credential is the security configuration of one endpoint, in the shape of
// Leshan's security store. Mode "psk" uses Identity and Key; mode "x509"
// accepts a device certificate whose subject CN is the endpoint.
type Credential struct {
	Endpoint string `json:"endpoint"`
	Mode     string `json:"mode"`
	Identity string `json:"identity,omitempty"`
	Key      []byte `json:"key,omitempty"`
}

// Observation is one observation the server holds on a device; Token
// identifies its notifications (RFC 7641 3.2).
type Observation struct {
	Token     []byte    `json:"token"`
	Endpoint  string    `json:"endpoint"`
	RegID     string    `json:"regId"`
	Paths     []string  `json:"paths"`
	Composite bool      `json:"composite"`
	Format    uint16    `json:"format"`
	Created   time.Time `json:"created"`
}

// Store is the server's durable state.
type Store interface {
	// PutRegistration inserts or replaces the registration with r.ID.
	PutRegistration(r Registration) error
	// DeleteRegistration removes a registration and the observations of it.
	DeleteRegistration(id string) error
	// Registrations returns all stored registrations.
	Registrations() ([]Registration, error)

	// PutCredential inserts or replaces the credential of c.Endpoint.
	PutCredential(c Credential) error
	// DeleteCredential removes the credential of an endpoint.
	DeleteCredential(endpoint string) error
	// Credential returns the credential of an endpoint, or ErrNotFound.
	Credential(endpoint string) (Credential, error)
	// CredentialByIdentity returns the PSK credential with this identity, or ErrNotFound.
	CredentialByIdentity(identity string) (Credential, error)
	// Credentials returns all credentials.
	Credentials() ([]Credential, error)

	// PutObservation inserts or replaces the observation with o.Token.
	PutObservation(o Observation) error
	// DeleteObservation removes an observation.
	DeleteObservation(token []byte) error
	// Observations returns all stored observations.
	Observations() ([]Observation, error)

	// Setting returns a server setting, or ErrNotFound.
	Setting(key string) ([]byte, error)
	// PutSetting stores a server setting.
	PutSetting(key string, value []byte) error

	// Close releases the store.
	Close() error
}
