package store

import (
	"fmt"
	"time"
)

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
	// RegistrationPage returns up to q.Limit registrations that match q,
	// in the byte order of their endpoints, from the first endpoint after
	// q.After. It reads only as far as the page needs (an index in
	// endpoint order), so a list of 100,000 devices is paged without
	// loading it. An endpoint stored under two IDs (between a new
	// Register and the removal of the old registration) may come twice;
	// the caller keeps the one it knows as live.
	RegistrationPage(q RegistrationQuery) ([]Registration, error)
}

// MaxPage bounds RegistrationQuery.Limit.
const MaxPage = 1000

// RegistrationQuery selects one page of registrations.
type RegistrationQuery struct {
	// After is the endpoint the page starts after: "" for the first
	// page, else the last endpoint of the page before (a keyset cursor:
	// devices coming and going between pages shift nothing).
	After string
	// Limit is the most registrations returned, 1 to MaxPage.
	Limit int
	// Search keeps the endpoints that contain it, ignoring ASCII case
	// ("" keeps all).
	Search string
	// Security keeps one security mode: "none", "psk" or "x509" ("" keeps all).
	Security string
	// Queue keeps the devices in queue mode (true) or not (false); nil keeps all.
	Queue *bool
}

// Valid says what is wrong with q, or nil.
func (q RegistrationQuery) Valid() error {
	if q.Limit < 1 || q.Limit > MaxPage {
		return fmt.Errorf("page limit %d: must be 1 to %d", q.Limit, MaxPage)
	}
	return nil
}

// Match says whether r is one q selects, cursor apart: the one definition
// of Search, Security and Queue the backends share.
func (q RegistrationQuery) Match(r Registration) bool {
	if q.Security != "" && r.Security != q.Security {
		return false
	}
	if q.Queue != nil && r.Queue != *q.Queue {
		return false
	}
	return ContainsFold(r.Endpoint, q.Search)
}

// ContainsFold reports whether sub is in s, ignoring the case of ASCII
// letters only (what the PostgreSQL backend's translate() folds too). It
// allocates nothing, so a backend may run it over every key it walks.
func ContainsFold[T ~string | ~[]byte](s T, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for j < n && lowerASCII(s[i+j]) == lowerASCII(sub[j]) {
			j++
		}
		if j == n {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
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
