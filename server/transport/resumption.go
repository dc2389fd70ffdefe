package transport

import (
	"sync"
	"time"

	"github.com/pion/dtls/v3"
)

// resumptionStore keeps what an abbreviated DTLS handshake (RFC 5246 7.3,
// session resumption) needs of recent sessions: ID, master secret, suite,
// the peer's identity. A device that reboots and offers the session ID it
// kept saves a round trip and the server the PSK key exchange. Bounded in
// count (the oldest entry goes first) and in age; about 200 bytes each.
type resumptionStore struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	byID  map[string]resumable
	order []string // insertion order, oldest first (may hold deleted IDs)
	hits  int64    // Gets that found a session: abbreviated handshakes offered
}

type resumable struct {
	s     dtls.Session
	added time.Time
}

func newResumptionStore(max int, ttl time.Duration) *resumptionStore {
	return &resumptionStore{max: max, ttl: ttl, byID: make(map[string]resumable)}
}

// Set is called by pion after a full handshake (key: the session ID).
func (r *resumptionStore) Set(key []byte, s dtls.Session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := string(key)
	if _, ok := r.byID[k]; !ok {
		r.order = append(r.order, k)
	}
	r.byID[k] = resumable{s: s, added: time.Now()}
	for len(r.byID) > r.max && len(r.order) > 0 {
		delete(r.byID, r.order[0])
		r.order = r.order[1:]
	}
	if len(r.order) > 2*r.max+16 { // compact the IDs deleted meanwhile
		live := r.order[:0]
		for _, id := range r.order {
			if _, ok := r.byID[id]; ok {
				live = append(live, id)
			}
		}
		r.order = append([]string(nil), live...)
	}
	return nil
}

// Get returns the session of ID key; the zero Session (which pion does
// not resume) when unknown or too old.
func (r *resumptionStore) Get(key []byte) (dtls.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[string(key)]
	if !ok || time.Since(e.added) > r.ttl {
		return dtls.Session{}, nil
	}
	r.hits++
	return e.s, nil
}

// Del forgets a session (pion calls it when a resumption failed).
func (r *resumptionStore) Del(key []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byID, string(key))
	return nil
}

// stats is the number of sessions kept and of resumptions offered.
func (r *resumptionStore) stats() (kept int, hits int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID), r.hits
}
