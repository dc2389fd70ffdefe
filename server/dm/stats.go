package dm

import "github.com/fotastack/fota/server/transport"

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
