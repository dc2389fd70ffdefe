package linksim

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"
)

var loopback = net.IPv4(127, 0, 0, 1)

// sink is a plain UDP socket that records what arrives, with the time.
type sink struct {
	pc  *net.UDPConn
	got chan arrival
}

type arrival struct {
	seq  uint32
	size int
	from *net.UDPAddr
	at   time.Time
}

func newSink(t *testing.T) *sink {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadBuffer(4 << 20) // loopback drops bursts into a small buffer
	s := &sink{pc: pc, got: make(chan arrival, 10000)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var seq uint32
			if n >= 4 {
				seq = binary.BigEndian.Uint32(buf)
			}
			s.got <- arrival{seq, n, from, time.Now()}
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return s
}

// collect returns what arrived until nothing came for quiet.
func (s *sink) collect(quiet time.Duration) []arrival {
	var out []arrival
	for {
		select {
		case a := <-s.got:
			out = append(out, a)
		case <-time.After(quiet):
			return out
		}
	}
}

func listen(t *testing.T, p Profile, seed uint64) *PacketConn {
	t.Helper()
	c, err := Listen(loopback, p, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c *PacketConn, to net.Addr, n, size int) {
	t.Helper()
	b := make([]byte, size)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(b, uint32(i))
		if _, err := c.WriteTo(b, to); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			time.Sleep(time.Millisecond) // no burst for the loopback to drop
		}
	}
}

func TestLatencyAndJitterDelayEveryDatagram(t *testing.T) {
	s := newSink(t)
	c := listen(t, Profile{Latency: 80 * time.Millisecond, Jitter: 40 * time.Millisecond}, 1)
	start := time.Now()
	send(t, c, s.pc.LocalAddr(), 20, 16)
	got := s.collect(300 * time.Millisecond)
	if len(got) != 20 {
		t.Fatalf("%d of 20 arrived on a lossless link", len(got))
	}
	var min, max time.Duration = time.Hour, 0
	for _, a := range got {
		d := a.at.Sub(start)
		min, max = minD(min, d), maxD(max, d)
	}
	if min < 80*time.Millisecond {
		t.Fatalf("a datagram arrived after %v, before the latency of 80ms", min)
	}
	if max-min < 5*time.Millisecond {
		t.Fatalf("arrivals spread over %v: no jitter", max-min)
	}
}

func TestDownlinkIsDelayedToo(t *testing.T) {
	s := newSink(t)
	c := listen(t, Profile{Latency: 60 * time.Millisecond}, 1)
	start := time.Now()
	if _, err := s.pc.WriteTo([]byte("ping"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 16)
	n, _, err := c.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Fatalf("downlink datagram after %v, before the latency", d)
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := c.ReadFrom(buf); !isTimeout(err) {
		t.Fatalf("read past deadline: %v, want a timeout", err)
	}
}

func TestLossDropsAboutTheConfiguredShare(t *testing.T) {
	s := newSink(t)
	c := listen(t, Profile{Loss: 0.3}, 7)
	send(t, c, s.pc.LocalAddr(), 1000, 8)
	got := s.collect(200 * time.Millisecond)
	if len(got) < 620 || len(got) > 780 {
		t.Fatalf("%d of 1000 arrived with 30%% loss", len(got))
	}
	if _, dropped := c.Stats(); dropped != 1000-len(got) {
		t.Fatalf("stats say %d dropped, %d missing", dropped, 1000-len(got))
	}
}

func TestDuplication(t *testing.T) {
	s := newSink(t)
	c := listen(t, Profile{Duplicate: 0.5}, 3)
	send(t, c, s.pc.LocalAddr(), 200, 8)
	got := s.collect(200 * time.Millisecond)
	if len(got) < 260 || len(got) > 340 {
		t.Fatalf("%d datagrams arrived for 200 sent with 50%% duplication", len(got))
	}
}

func TestReordering(t *testing.T) {
	s := newSink(t)
	c := listen(t, Profile{Reorder: 0.2, ReorderDelay: 30 * time.Millisecond}, 5)
	b := make([]byte, 8)
	for i := 0; i < 100; i++ {
		binary.BigEndian.PutUint32(b, uint32(i))
		_, _ = c.WriteTo(b, s.pc.LocalAddr())
		time.Sleep(time.Millisecond)
	}
	got := s.collect(200 * time.Millisecond)
	if len(got) != 100 {
		t.Fatalf("%d of 100 arrived", len(got))
	}
	inversions := 0
	for i := 1; i < len(got); i++ {
		if got[i].seq < got[i-1].seq {
			inversions++
		}
	}
	if inversions == 0 {
		t.Fatal("no datagram overtaken with 20% reordering")
	}
}

func TestRateLimitPacesTheUplink(t *testing.T) {
	s := newSink(t)
	// 400 kbit/s = 50 kB/s: 25 kB take about 0.5 s.
	c := listen(t, Profile{UpRate: 400_000}, 1)
	start := time.Now()
	send(t, c, s.pc.LocalAddr(), 25, 1000)
	got := s.collect(300 * time.Millisecond)
	if len(got) != 25 {
		t.Fatalf("%d of 25 arrived", len(got))
	}
	took := got[len(got)-1].at.Sub(start)
	if took < 450*time.Millisecond || took > 900*time.Millisecond {
		t.Fatalf("25 kB at 50 kB/s took %v, want about 500ms", took)
	}
}

func TestMTUDropsOrRefuses(t *testing.T) {
	s := newSink(t)
	c := listen(t, Profile{MTU: 100}, 1)
	send(t, c, s.pc.LocalAddr(), 1, 101)
	send(t, c, s.pc.LocalAddr(), 1, 100)
	got := s.collect(100 * time.Millisecond)
	if len(got) != 1 || got[0].size != 100 {
		t.Fatalf("arrived %+v; want only the 100-byte datagram", got)
	}
	e := listen(t, Profile{MTU: 100, MTUError: true}, 1)
	if _, err := e.WriteTo(make([]byte, 101), s.pc.LocalAddr()); !errors.Is(err, ErrMTU) {
		t.Fatalf("write over MTU: %v, want ErrMTU", err)
	}
}

// A carrier NAT forgets an idle binding: the next datagram leaves from a
// new port and answers to the old one are lost; the wrapper stays usable.
func TestNATRebindingAfterIdle(t *testing.T) {
	s := newSink(t)
	c := listen(t, Profile{NATTimeout: 100 * time.Millisecond}, 1)
	send(t, c, s.pc.LocalAddr(), 1, 8)
	first := s.collect(50 * time.Millisecond)
	send(t, c, s.pc.LocalAddr(), 1, 8) // not idle: same port
	second := s.collect(150 * time.Millisecond)
	send(t, c, s.pc.LocalAddr(), 1, 8) // idle for 150ms: new port
	third := s.collect(50 * time.Millisecond)
	if len(first) != 1 || len(second) != 1 || len(third) != 1 {
		t.Fatalf("arrivals %d %d %d", len(first), len(second), len(third))
	}
	if first[0].from.Port != second[0].from.Port {
		t.Fatal("port changed without idling")
	}
	if second[0].from.Port == third[0].from.Port {
		t.Fatal("port kept after the NAT timeout")
	}
	if r, _ := c.Stats(); r != 1 {
		t.Fatalf("%d rebindings, want 1", r)
	}
	// An answer to the old port is lost, one to the new port arrives.
	_, _ = s.pc.WriteTo([]byte("old"), first[0].from)
	_, _ = s.pc.WriteTo([]byte("new"), third[0].from)
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 8)
	n, _, err := c.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "new" {
		t.Fatalf("read %q, %v; want only the answer to the new port", buf[:n], err)
	}
}

// The same seed gives the same fates, datagram by datagram.
func TestSeedMakesImpairmentsReproducible(t *testing.T) {
	p := Profile{Loss: 0.5}
	fates := func(seed uint64) []bool {
		s := newSink(t)
		c := listen(t, p, seed)
		send(t, c, s.pc.LocalAddr(), 64, 8)
		got := s.collect(100 * time.Millisecond)
		out := make([]bool, 64)
		for _, a := range got {
			out[a.seq] = true
		}
		return out
	}
	a, b, other := fates(42), fates(42), fates(43)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("datagram %d: different fate with the same seed", i)
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == other[i]
	}
	if same {
		t.Fatal("another seed gave the same 64 fates")
	}
}

func TestConnTalksToItsPeer(t *testing.T) {
	s := newSink(t)
	c, err := Dial(loopback, s.pc.LocalAddr(), Profile{Latency: 10 * time.Millisecond}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("abcd")); err != nil {
		t.Fatal(err)
	}
	got := s.collect(100 * time.Millisecond)
	if len(got) != 1 {
		t.Fatalf("%d arrived", len(got))
	}
	_, _ = s.pc.WriteTo([]byte("back"), got[0].from)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 8)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "back" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestProfiles(t *testing.T) {
	nb, err := Lookup("nb-iot")
	if err != nil {
		t.Fatal(err)
	}
	// 3GPP TR 45.820: NB-IoT round trips 1.6 to 10 s; tens of kbit/s.
	if nb.RTT() < 1600*time.Millisecond || nb.RTT() > 10*time.Second || nb.DownRate > 100_000 {
		t.Fatalf("nb-iot profile %+v out of the published range", nb)
	}
	if _, err := Lookup("5g"); err == nil {
		t.Fatal("unknown profile accepted")
	}
	if len(Names()) != 3 {
		t.Fatalf("profiles %v", Names())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func minD(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func maxD(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
