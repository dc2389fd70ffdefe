package store

import "time"

// HistoryEntry is one thing that happened to a device: it registered or
// left, a campaign took it from one state to the next, its Firmware Update
// object reported a state or result.
type HistoryEntry struct {
	Time     time.Time `json:"time"`
	Endpoint string    `json:"endpoint"`
	// Kind is registered, deregistered, expired, campaign or firmware.
	Kind string `json:"kind"`
	// Detail says it for a person.
	Detail   string `json:"detail"`
	Campaign string `json:"campaign,omitempty"`
	State    string `json:"state,omitempty"`
	Result   int    `json:"result,omitempty"`
	Version  string `json:"version,omitempty"`
}

// AuditEntry is one API call that changed something: who, what, when, and
// how it ended.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Actor names the credential used (the token's name).
	Actor string `json:"actor"`
	// Action is the method and path, as "POST /api/campaigns".
	Action string `json:"action"`
	// Status is the HTTP status answered.
	Status int    `json:"status"`
	Remote string `json:"remote,omitempty"`
	// Domain is the domain the call acted in ("" before domains: the
	// default domain).
	Domain string `json:"domain,omitempty"`
}

// HistoryStore keeps a bounded history per device, which outlives the
// device's registrations.
type HistoryStore interface {
	// AddHistory appends entries to their endpoints' histories, in one
	// atomic step, and drops the oldest of each history beyond keep.
	AddHistory(entries []HistoryEntry, keep int) error
	// History returns the newest limit entries of ep, oldest first
	// (none, not an error, for an endpoint without history).
	History(ep string, limit int) ([]HistoryEntry, error)
}

// AuditStore keeps the audit trail of the API, bounded.
type AuditStore interface {
	// AddAudit appends a to the trail and drops the oldest beyond keep.
	AddAudit(a AuditEntry, keep int) error
	// Audit returns the newest limit entries, oldest first.
	Audit(limit int) ([]AuditEntry, error)
}
