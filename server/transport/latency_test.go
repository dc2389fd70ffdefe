package transport

import (
	"testing"
	"time"
)

// Buckets are cumulative and bounds inclusive, as Prometheus reads them;
// a duration beyond the last bound counts only in Count (+Inf).
func TestLatencyBuckets(t *testing.T) {
	var l latency
	for _, d := range []time.Duration{3 * time.Millisecond, 10 * time.Millisecond, 300 * time.Millisecond, 20 * time.Second} {
		l.observe(d)
	}
	st := l.stats()
	for bound, want := range map[float64]uint64{.005: 1, .01: 2, .25: 2, .5: 3, 10: 3} {
		if got := st.Buckets[bound]; got != want {
			t.Errorf("bucket le=%v: %d, want %d", bound, got, want)
		}
	}
	if st.Count != 4 {
		t.Errorf("count %d, want 4", st.Count)
	}
	if want := 20.313; st.Sum < want-1e-9 || st.Sum > want+1e-9 {
		t.Errorf("sum %v, want %v", st.Sum, want)
	}
}
