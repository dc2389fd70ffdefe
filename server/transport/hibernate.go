package transport

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/pion/dtls/v3"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Session hibernation keeps an idle DTLS device compact. A live session
// costs a pion conn and a go-coap conn with five goroutines, about 48 KiB
// (../shared/notes/go-coap-and-pion-dtls.md); a hibernated one is the
// association record with the serialized DTLS state (a few hundred bytes)
// and its routing entries, and no goroutine.
//
// Safety of the snapshot (pion's ResumeWithOptions documents it): the
// pipe of the old incarnation is closed before the state is taken, so no
// record the old conn sends afterwards (its close_notify included) reaches
// the wire, and the state is dropped as soon as it is restored, so it is
// restored at most once. A record the peer sends while the snapshot is
// taken is lost like any datagram; CoAP retransmits it.
//
// What a hibernation forgets: go-coap's per-conn state, that is the
// response cache for deduplication (RFC 7252 4.5) and blockwise transfers
// in progress. That is why only sessions idle for HibernateAfter, with no
// request in flight either way, hibernate; with HibernateAfter at or above
// EXCHANGE_LIFETIME (247 s) no duplicate can be missed at all.

// hibernated reports whether a has a record and no live incarnation.
func (a *association) hibernated() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur == nil && a.state != nil
}

// peerAddr is the peer's address while hibernated, else nil.
func (a *association) peerAddr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil {
		return a.peer
	}
	return nil
}

// hibernateIfIdle hibernates an established association that has been
// idle for after with nothing in flight.
func (a *association) hibernateIfIdle(now time.Time, after time.Duration) {
	if !a.established.Load() || a.closing.Load() || a.busy.Load() > 0 ||
		now.UnixNano()-a.lastActive.Load() < int64(after) {
		return
	}
	a.mu.Lock()
	inc := a.cur
	if inc == nil || inc.conn == nil || inc.cc == nil || a.busy.Load() > 0 {
		a.mu.Unlock()
		return
	}
	// Close the pipe first: from here on nothing the old conn sends goes
	// out, so the sequence numbers in the snapshot are never reused.
	inc.retired.Store(true)
	inc.release()
	state, ok := inc.conn.ConnectionState()
	var b []byte
	var err error
	if ok {
		if b, err = state.MarshalBinary(); err == nil {
			b = bytes.Clone(b) // the encoder's buffer has room to spare
		}
	}
	if !ok || err != nil {
		a.mu.Unlock()
		a.d.log.Warn("dtls: cannot hibernate, session closed", "peer", a.addr, "err", err)
		inc.retired.Store(false)
		a.shutdown()
		return
	}
	a.state = b
	a.peer = inc.conn.RemoteAddr()
	a.cur = nil
	// The session must not keep the closed connection alive: it holds
	// the go-coap and pion conns with their buffers, most of a live
	// session's memory.
	if s := a.session; s != nil {
		s.mu.Lock()
		s.Conn = nil
		s.mu.Unlock()
	}
	a.mu.Unlock()
	a.d.hibernated.Add(1)
	a.d.asleep.Add(1)
	inc.stop()
}

// resumeLocked restores the hibernated session over a new incarnation.
// Called with a.mu held.
func (a *association) resumeLocked() (*incarnation, error) {
	d := a.d
	st := &dtls.State{}
	err := st.UnmarshalBinary(a.state)
	a.state = nil // restored at most once, whatever happens next
	d.asleep.Add(-1)
	if err != nil {
		return nil, fmt.Errorf("resume: decode state: %w", err)
	}
	inc := newIncarnation(a)
	conn, err := dtls.ResumeWithOptions(st, inc, a.peer, d.opts...)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.HandshakeTimeout)
	err = conn.HandshakeContext(ctx) // no flight is sent: the state is complete
	cancel()
	if err != nil {
		inc.release()
		_ = conn.Close()
		return nil, fmt.Errorf("resume: %w", err)
	}
	a.attachLocked(inc, conn)
	a.peer = nil
	d.resumed.Add(1)
	return inc, nil
}

// use returns the live connection for a request the server sends,
// resuming the session if it hibernates.
func (a *association) use(ctx context.Context) (*udpClient.Conn, func(), error) {
	a.mu.Lock()
	if a.closing.Load() {
		a.mu.Unlock()
		return nil, nil, ErrSessionClosed
	}
	inc := a.cur
	if inc == nil {
		if a.state == nil {
			a.mu.Unlock()
			return nil, nil, ErrSessionClosed
		}
		var err error
		if inc, err = a.resumeLocked(); err != nil {
			a.mu.Unlock()
			a.shutdown()
			return nil, nil, err
		}
	}
	a.busy.Add(1)
	a.mu.Unlock()
	a.touch()
	return inc.cc, func() { a.touch(); a.busy.Add(-1) }, ctx.Err()
}
