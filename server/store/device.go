package store

import "time"

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

// RegistrationStore keeps the registrations of LwM2M clients.
type RegistrationStore interface {
	// PutRegistration inserts or replaces the registration with r.ID.
	PutRegistration(r Registration) error
	// DeleteRegistration removes a registration and, in the same atomic
	// step, the observations of it.
	DeleteRegistration(id string) error
	// Registrations returns all stored registrations, in no set order.
	Registrations() ([]Registration, error)
}

// CredentialStore keeps the security configuration of devices at the
// device management server (the bootstrap server has its own, in
// BootstrapStore: a bootstrap key must never open a DM session).
type CredentialStore interface {
	// PutCredential inserts or replaces the credential of c.Endpoint. A PSK
	// identity that belongs to another endpoint is refused with ErrExists:
	// two endpoints sharing an identity could impersonate each other.
	PutCredential(c Credential) error
	// DeleteCredential removes the credential of an endpoint, or returns
	// ErrNotFound.
	DeleteCredential(endpoint string) error
	// Credential returns the credential of an endpoint, or ErrNotFound.
	Credential(endpoint string) (Credential, error)
	// CredentialByIdentity returns the PSK credential with this identity, or ErrNotFound.
	CredentialByIdentity(identity string) (Credential, error)
	// Credentials returns all credentials, in no set order.
	Credentials() ([]Credential, error)
}

// ObservationStore keeps the observations the server holds on devices, so
// that notifications after a restart are still recognised.
type ObservationStore interface {
	// PutObservation inserts or replaces the observation with o.Token.
	PutObservation(o Observation) error
	// DeleteObservation removes an observation; removing one that is not
	// stored is not an error.
	DeleteObservation(token []byte) error
	// Observations returns all stored observations, in no set order.
	Observations() ([]Observation, error)
}

// SettingStore keeps small server settings (the API token, the firmware
// signing key) by name.
type SettingStore interface {
	// Setting returns a server setting, or ErrNotFound.
	Setting(key string) ([]byte, error)
	// PutSetting stores a server setting, replacing any.
	PutSetting(key string, value []byte) error
}
