package transport

import (
	"sync/atomic"
	"time"
)

// latencyBounds are the upper bounds, in seconds, of the handshake latency
// buckets: Prometheus' default buckets, which span a LAN handshake (ms)
// to a cellular one with retransmitted flights (seconds).
var latencyBounds = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// latency counts durations into fixed buckets with atomics only: it is
// updated from every handshake goroutine and read by a metrics scrape, and
// transport does not import Prometheus (the metrics package turns it into
// a histogram).
type latency struct {
	buckets [12]atomic.Uint64 // per bound, and the last for +Inf
	sumNano atomic.Int64
}

func (l *latency) observe(d time.Duration) {
	s := d.Seconds()
	i := len(latencyBounds)
	for j, b := range latencyBounds {
		if s <= b {
			i = j
			break
		}
	}
	l.buckets[i].Add(1)
	l.sumNano.Add(int64(d))
}

// LatencyStats is a histogram of durations: Buckets maps each upper bound
// in seconds to the number of observations at or below it (cumulative,
// as Prometheus wants it).
type LatencyStats struct {
	Count   uint64
	Sum     float64 // seconds
	Buckets map[float64]uint64
}

func (l *latency) stats() LatencyStats {
	st := LatencyStats{Buckets: make(map[float64]uint64, len(latencyBounds))}
	var cum uint64
	for i, b := range latencyBounds {
		cum += l.buckets[i].Load()
		st.Buckets[b] = cum
	}
	// Count is what the buckets hold, +Inf included, so the histogram is
	// consistent even while an observation is half recorded.
	st.Count = cum + l.buckets[len(latencyBounds)].Load()
	st.Sum = float64(l.sumNano.Load()) / float64(time.Second)
	return st
}

// HandshakeLatency reports how long completed DTLS handshakes took, from
// the start of the server side of the handshake (the first ClientHello) to
// its last flight.
func (d *DTLS) HandshakeLatency() LatencyStats { return d.hsLatency.stats() }

// Latency is the same histogram for other parts' durations (device
// management's registrations and store writes), so every latency the
// server exports has the same buckets. The zero value is ready.
type Latency struct{ l latency }

// Observe counts one duration.
func (x *Latency) Observe(d time.Duration) { x.l.observe(d) }

// Stats reads the histogram.
func (x *Latency) Stats() LatencyStats { return x.l.stats() }
