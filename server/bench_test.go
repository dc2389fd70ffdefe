package server_test

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/server/servertest"
)

// BenchmarkRegister registers b.N simulated clients over DTLS-PSK (one
// handshake and one Register each, 32 at a time) against a server in the
// same process, and reports registrations per second and the server's heap
// bytes per registered device (measured after the clients went silent
// without closing their sessions, so the server still holds every session).
func BenchmarkRegister(b *testing.B) {
	srv := servertest.Start(b)
	for i := 0; i < b.N; i++ {
		srv.AddPSK(fmt.Sprintf("bench-%d", i), fmt.Sprintf("bench-%d-id", i), testKey)
	}
	devs := make([]*testDevice, b.N)
	pcs := make([]*mutePC, b.N)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				ep := fmt.Sprintf("bench-%d", i)
				d := newTestDevice(b, ep)
				udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					failed.Add(1)
					return
				}
				pc := &mutePC{PacketConn: udp}
				if err := d.dialPSKOn(pc, srv.CoAPSAddr(), ep+"-id", testKey); err != nil {
					failed.Add(1)
					continue
				}
				r, err := d.post("/rd", []string{"ep=" + ep, "lt=600", "lwm2m=1.1"}, []byte(defaultLinks))
				if err != nil || r.Code != codes.Created {
					failed.Add(1)
					continue
				}
				devs[i], pcs[i] = d, pc
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d registrations failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "registrations/s")
	// Silence the clients (a device that sleeps says nothing) and drop
	// their state, so that the heap holds only the server's side.
	for i := range devs {
		pcs[i].muted.Store(true)
		_ = devs[i].cc.Close()
		devs[i] = nil
	}
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if got := len(srv.Devices()); got != b.N {
		b.Fatalf("%d devices registered, want %d", got, b.N)
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "server-heap-B/device")
	b.ReportMetric(0, "ns/op")
}

type mutePC struct {
	net.PacketConn
	muted atomic.Bool
}

func (m *mutePC) WriteTo(p []byte, a net.Addr) (int, error) {
	if m.muted.Load() {
		return len(p), nil
	}
	return m.PacketConn.WriteTo(p, a)
}
