package server_test

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/transport"
)

// lossyProxy forwards datagrams between one device and the server and
// drops every upEvery-th datagram from the device and every downEvery-th
// from the server: a lossy link that loses the same datagrams every run.
type lossyProxy struct {
	front  *net.UDPConn
	back   *net.UDPConn
	mu     sync.Mutex
	device *net.UDPAddr
}

func newLossyProxy(t *testing.T, server net.Addr, upEvery, downEvery int) *lossyProxy {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{front: front, back: back}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for n := 1; ; n++ {
			k, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.device = from
			p.mu.Unlock()
			if n%upEvery != 0 {
				_, _ = back.Write(buf[:k])
			}
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for n := 1; ; n++ {
			k, err := back.Read(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			to := p.device
			p.mu.Unlock()
			if to != nil && n%downEvery != 0 {
				_, _ = front.WriteToUDP(buf[:k], to)
			}
		}
	}()
	t.Cleanup(func() { front.Close(); back.Close(); wg.Wait() })
	return p
}

// A full-image push over a link that loses datagrams both ways, 2.31
// Continue answers among them: every block still arrives in order and the
// device holds the whole package (go-coap's own Block1 sender stops for
// good at the first lost 2.31), and the progress callback sees each block.
func TestPushOverLossyLink(t *testing.T) {
	if testing.Short() {
		t.Skip("a push with retransmissions")
	}
	// A short ACK_TIMEOUT: the lost datagrams are resent in a fraction of
	// a second instead of RFC 7252's 2 to 3 s.
	e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"), func(c *server.Config) {
		c.Transmission.Default = transport.Transmission{ACKTimeout: 250 * time.Millisecond, MaxRetransmit: 8}
	})
	v1, v2 := testImages(12<<10, 17)
	if _, err := e.fw.AddImage("sim", "1.0", v1, false); err != nil {
		t.Fatal(err)
	}
	img2, err := e.fw.AddImage("sim", "2.0", v2, false)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newLossyProxy(t, e.srv.CoAPSAddr(), 11, 7)
	startRealDeviceAt(t, e, "lossy-1", "1.0", v1, 0, "coaps://"+proxy.front.LocalAddr().String())
	waitFor(t, "device registered", func() bool { return e.srv.Device("lossy-1") != nil })
	p, err := e.fw.PackageFor(img2, "1.0", true)
	if err != nil {
		t.Fatal(err)
	}
	data, err := e.fw.PackageData(p)
	if err != nil {
		t.Fatal(err)
	}
	var calls, last int
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opaque := lwm2m.FormatOpaque
	resp, err := e.srv.Do(ctx, "lossy-1", dm.Request{Method: codes.PUT, Path: "/5/0/0", Format: &opaque, Payload: data,
		Progress: func(sent, total int) {
			if sent <= last || total != len(data) {
				t.Errorf("progress %d of %d after %d", sent, total, last)
			}
			calls, last = calls+1, sent
		}})
	if err != nil {
		t.Fatalf("push of %d bytes: %v", len(data), err)
	}
	if resp.Code != codes.Changed {
		t.Fatalf("push answered %v", resp.Code)
	}
	if blocks := (len(data) + 1023) / 1024; calls != blocks || last != len(data) {
		t.Fatalf("progress called %d times up to %d bytes, want %d blocks up to %d", calls, last, blocks, len(data))
	}
	st, err := e.srv.Read(ctx, "lossy-1", "/5/0/3", nil)
	if err != nil || string(st.Payload) != "2" {
		t.Fatalf("/5/0/3 after the push: %q %v, want 2 (Downloaded)", st.Payload, err)
	}
}
