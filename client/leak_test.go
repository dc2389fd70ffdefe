package client

import (
	"runtime"
	"testing"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Every goroutine a client starts (registration loop, connections,
// observations) ends with Stop: starting and stopping clients repeatedly
// leaves the goroutine count where it was.
func TestStopLeavesNoGoroutines(t *testing.T) {
	s := newTestServer(t, true)
	settle := func() int {
		n := runtime.NumGoroutine()
		for i := 0; i < 50; i++ {
			time.Sleep(20 * time.Millisecond)
			if m := runtime.NumGoroutine(); m == n {
				return m
			} else {
				n = m
			}
		}
		return n
	}
	cycle := func() {
		c, _ := startClient(t, s, nil)
		d := s.device(c.cfg.Endpoint)
		if r := d.do(codes.PUT, "/4/0/2", -1, nil, queryOpt("pmax=1")); r.code != codes.Changed {
			t.Fatalf("write-attributes: %v", r.code)
		}
		n := newNotes()
		if _, err := d.conn.Observe(t.Context(), "/4/0/2", n.add); err != nil {
			t.Fatal(err)
		}
		n.next(t, time.Second)
		_ = c.SimpleObject(4).Set(lwm2m.ResourcePath(4, 0, 2), lwm2m.Integer(-1))
		n.next(t, 2*time.Second)
		c.Stop()
		s.expect("deregister", 2*time.Second)
	}
	cycle() // warm up pools and the server side
	base := settle()
	for i := 0; i < 6; i++ {
		cycle()
	}
	after := settle()
	t.Logf("goroutines: %d before, %d after", base, after)
	if after > base+3 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines %d before, %d after 3 client lifetimes\n%s", base, after, buf[:runtime.Stack(buf, true)])
	}
}
