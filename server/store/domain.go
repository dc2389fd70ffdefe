package store

import "time"

// DefaultDomain is the domain of every record no domain claimed: all the
// records of a database written before domains existed, and what the
// operator's token (FOTA_API_TOKEN) acts in. Such a database keeps working
// unchanged: nothing has to be rewritten to migrate it.
const DefaultDomain = "default"

// Roles of a domain's tokens, weakest first.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "administrator"
)

// Kinds of record a domain owns (DomainStore.Claim). An endpoint covers
// everything keyed by it: its registrations, credentials, bootstrap
// configuration and credentials, history; a device type covers its images'
// names and its profile; packages follow their target image.
const (
	OwnEndpoint   = "endpoint"
	OwnImage      = "image"
	OwnDeviceType = "devicetype"
	OwnCampaign   = "campaign"
)

// Domain is one tenant: an agency or customer whose devices, credentials,
// firmware, campaigns and operators are invisible to every other.
type Domain struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// Token is an API bearer token of a domain, stored by the SHA-256 of its
// secret (Hash, hex): the secret itself is shown once, at creation.
type Token struct {
	ID      string    `json:"id"`
	Domain  string    `json:"domain"`
	Role    string    `json:"role"`
	Name    string    `json:"name,omitempty"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	// Expires is when it stops working (zero: never).
	Expires time.Time `json:"expires,omitzero"`
	// Revoked is when it was revoked (zero: it was not).
	Revoked time.Time `json:"revoked,omitzero"`
}

// DomainStore keeps the domains, their tokens and which domain owns which
// record. Ownership is kept beside the records, not in them, so that a
// record nobody claimed (every record of an older database) belongs to
// DefaultDomain without being rewritten, and each part of the server keeps
// its records as before.
type DomainStore interface {
	// AddDomain stores a new domain (ErrExists if the name is taken).
	AddDomain(d Domain) error
	// Domains returns every stored domain (DefaultDomain is implicit).
	Domains() ([]Domain, error)
	// PutToken stores t (a new one, or a revocation of one stored).
	// A hash that belongs to another token ID is ErrExists.
	PutToken(t Token) error
	// TokenByHash finds a token by the hash of its secret.
	TokenByHash(hash string) (Token, error)
	// Tokens returns a domain's tokens.
	Tokens(domain string) ([]Token, error)
	// Claim makes domain the owner of (kind, key). Claiming what the same
	// domain owns is nil; what another domain owns is ErrExists, in one
	// atomic step (two domains racing for a name: one wins).
	Claim(kind, key, domain string) error
	// Owner returns the domain that claimed (kind, key): ErrNotFound when
	// none did (then it is DefaultDomain's).
	Owner(kind, key string) (string, error)
	// Owners returns key -> domain of every claimed key of a kind.
	Owners(kind string) (map[string]string, error)
	// Release forgets the owner of (kind, key) (nil if none).
	Release(kind, key string) error
}
