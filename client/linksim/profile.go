package linksim

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Profile is the behaviour of one device's link, the same for every device
// that uses it (each device draws its own random numbers).
type Profile struct {
	// Name is how the profile is chosen on command lines.
	Name string
	// Latency is the one-way delay of every datagram (half the RTT).
	Latency time.Duration
	// Jitter adds a uniformly drawn delay in [0, Jitter) per datagram;
	// datagrams overtake each other when it exceeds their spacing.
	Jitter time.Duration
	// Loss, Duplicate and Reorder are per-datagram probabilities (0..1):
	// a lost datagram is never delivered, a duplicated one is delivered
	// twice, a reordered one is held back an extra ReorderDelay.
	Loss, Duplicate, Reorder float64
	ReorderDelay             time.Duration
	// UpRate and DownRate are the link rates in bits per second (0:
	// unlimited), a token bucket per direction with Burst bytes of credit.
	UpRate, DownRate int
	Burst            int
	// MTU is the largest datagram the link carries (0: unlimited). A
	// bigger one is dropped, or refused with ErrMTU when MTUError is set.
	MTU      int
	MTUError bool
	// NATTimeout is the idle time after which the carrier's NAT forgets
	// the binding: the next datagram leaves from a new source port (0:
	// never).
	NATTimeout time.Duration
}

// RTT is the round trip time without jitter.
func (p Profile) RTT() time.Duration { return 2 * p.Latency }

// Named profiles. The figures are from published measurements, rounded:
//
// nb-iot: 3GPP TR 45.820 (Cellular IoT, 2015) and TR 36.888 evaluate
// NB-IoT in three coverage classes (normal, robust 144 dB MCL, extreme
// 164 dB MCL); round trips for a small report range from about 1.6 s in
// normal coverage to about 10 s in extreme coverage. Rel-13 single-tone
// peak rates are about 26 kbit/s down and 62 kbit/s up (TS 36.306 UE
// category NB1); what one device gets in a loaded cell is a few tens of
// kbit/s at best, so we use 20 kbit/s down, 30 kbit/s up, and an RTT of
// 2 s with up to 1 s jitter (the "normal coverage" end: devices in deep
// coverage are slower still). Radio-layer HARQ/RLC retransmissions hide
// most loss from IP, so IP loss is small (1%). The MTU of 1280 is the
// IPv6 minimum that NB-IoT operators commonly configure for IP PDN.
//
// lte-m: LTE Cat-M1 (3GPP TR 36.888; TS 36.306): about 375 kbit/s up,
// 300 kbit/s down in half-duplex FDD, up to 1 Mbit/s in full duplex;
// measured RTTs about 100 to 300 ms. We use 150 ms RTT, 50 ms jitter,
// 300/375 kbit/s, 0.5% loss.
//
// NAT bindings: carrier measurements of UDP binding timeouts (e.g.
// Hätönen et al., "An experimental study of home gateway characteristics",
// IMC 2010, and mobile-operator studies reporting 20 to 120 s for UDP)
// range from 20 to 120 s; nb-iot uses 30 s and lte-m 60 s.
var profiles = map[string]Profile{
	"lan": {Name: "lan"},
	"lte-m": {
		Name: "lte-m", Latency: 75 * time.Millisecond, Jitter: 50 * time.Millisecond,
		Loss: 0.005, Duplicate: 0.001, Reorder: 0.005, ReorderDelay: 50 * time.Millisecond,
		UpRate: 375_000, DownRate: 300_000, Burst: 4096, MTU: 1400, NATTimeout: 60 * time.Second,
	},
	"nb-iot": {
		Name: "nb-iot", Latency: time.Second, Jitter: time.Second,
		Loss: 0.01, Duplicate: 0.002, Reorder: 0.01, ReorderDelay: 500 * time.Millisecond,
		UpRate: 30_000, DownRate: 20_000, Burst: 1600, MTU: 1280, NATTimeout: 30 * time.Second,
	},
}

// Lookup returns the named profile.
func Lookup(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("link profile %q: unknown (have %s)", name, strings.Join(Names(), ", "))
	}
	return p, nil
}

// Names lists the named profiles.
func Names() []string {
	out := make([]string, 0, len(profiles))
	for n := range profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
