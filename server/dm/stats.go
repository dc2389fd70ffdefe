package dm

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// DTLSStats are the counters of the DTLS listener.
type DTLSStats struct {
	// Handshakes completed and refused (failed or rate-limited).
	Handshakes, Refused int64
	// Associations open now, live or hibernated.
	Associations int
	// Hibernations and Resumptions so far; Asleep is how many sessions
	// are hibernated now.
	Hibernations, Resumptions int64
	Asleep                    int
	// HandshakeLatency is how long the completed handshakes took.
	HandshakeLatency transport.LatencyStats
}

// DTLSStats reports the DTLS listener's counters (zero without one): what
// the fleet benchmark (issue 8) reports as handshakes per second.
func (s *Server) DTLSStats() DTLSStats {
	if s.dtls == nil {
		return DTLSStats{}
	}
	var st DTLSStats
	st.Handshakes, st.Refused, st.Associations = s.dtls.Stats()
	st.Hibernations, st.Resumptions, st.Asleep = s.dtls.HibernationStats()
	st.HandshakeLatency = s.dtls.HandshakeLatency()
	return st
}

// requestCounts counts the requests sent to devices by their answer's
// code, or as timed out or failed without an answer. Atomics: every
// request goroutine updates them, a metrics scrape reads them.
type requestCounts struct {
	byCode             [256]atomic.Int64
	timeouts, failures atomic.Int64
}

func (c *requestCounts) count(ctx context.Context, resp *pool.Message, err error) {
	switch {
	case err == nil:
		c.byCode[uint8(resp.Code())].Add(1)
	case ctx.Err() != nil:
		c.timeouts.Add(1)
	default:
		c.failures.Add(1)
	}
}

// RequestStats reports the requests sent to devices since the start (each
// Block1 block is one), by the answer's code in CoAP's dotted form
// ("2.05", "4.04"), and as "timeout" or "error" when none came.
func (s *Server) RequestStats() map[string]int64 {
	out := map[string]int64{"timeout": s.reqs.timeouts.Load(), "error": s.reqs.failures.Load()}
	for i := range s.reqs.byCode {
		if n := s.reqs.byCode[i].Load(); n > 0 {
			c := codes.Code(i)
			out[fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&0x1f)] = n
		}
	}
	return out
}

// registrationLatencies time what devices wait for at registration: the
// Register and Update exchanges (request in to answer out) and, within
// them, the store's writes, which a slow disk or database stretches.
type registrationLatencies struct {
	register, update, storeWrite transport.Latency
}

// RegistrationStats are the latency histograms of registrations.
type RegistrationStats struct {
	// Register and Update: from the request's arrival to the answer
	// (2.01 Created, 2.04 Changed), the store write included.
	Register, Update transport.LatencyStats
	// StoreWrite: the store's PutRegistration and DeleteRegistration.
	StoreWrite transport.LatencyStats
}

// RegistrationStats reports the registration latencies.
func (s *Server) RegistrationStats() RegistrationStats {
	return RegistrationStats{Register: s.regStats.register.Stats(), Update: s.regStats.update.Stats(), StoreWrite: s.regStats.storeWrite.Stats()}
}

// putRegistration stores r and times the write.
func (s *Server) putRegistration(r store.Registration) error {
	t := time.Now()
	err := s.store.PutRegistration(r)
	s.regStats.storeWrite.Observe(time.Since(t))
	return err
}

// RetransmissionStats sums the CoAP retransmissions of both listeners
// (the server's own are counted on DTLS sessions only: transport).
func (s *Server) RetransmissionStats() transport.RetransmissionStats {
	var st transport.RetransmissionStats
	if s.udp != nil {
		u := s.udp.Retransmissions()
		st.Received += u.Received
	}
	if s.dtls != nil {
		d := s.dtls.Retransmissions()
		st.Sent += d.Sent
		st.Received += d.Received
	}
	return st
}
