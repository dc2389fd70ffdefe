package firmware

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
)

// A Package URI with the server's grant nstart=4, on the device's own
// server: the device keeps up to four Block2 GETs in flight over the
// registration session (non-confirmable, so an answer queued on a slow
// link does not make the device ask again), and the staged bytes are the
// package, byte for byte.
func TestPullPipelinedWindow(t *testing.T) {
	fx := testFixture(t)
	files := &fileServer{t: t, data: fx.pkg, etag: []byte("etag-1"), stallAt: -1, corrupt: map[int64]bool{}}
	var srv *lwm2mServer
	srv = newLwM2MServer(t, false, options.WithMux(mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
		if p, _ := r.Options().Path(); r.Code() == codes.GET && p == "/fw" {
			files.serve(w, r)
			return
		}
		srv.serve(w, r)
	})))
	d := newDevice(t, func(c *Config) {
		c.BlockSize = 256
		c.RequestTimeout = 5 * time.Second
		c.RetryWait = 10 * time.Millisecond
	})
	startClient(t, d, srv.addr)
	srv.registration(10 * time.Second)
	start := time.Now()
	if err := writeURI(d.o, "coaps://"+srv.addr+"/fw?nstart=4"); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, 30*time.Second)
	t.Logf("pipelined pull of %d bytes in %v; blocks asked %v", len(fx.pkg), time.Since(start), files.requests())
	stagedEquals(t, d, fx.pkg)
	// Each block asked once (no retransmitted or repeated requests), and
	// the window filled: some block was asked before one of a lower number.
	blocks := (len(fx.pkg) + 255) / 256
	asked := files.requests()
	seen := map[int64]bool{}
	ahead := false
	for i, n := range asked {
		if seen[n] {
			t.Errorf("block %d asked twice: %v", n, asked)
		}
		seen[n] = true
		ahead = ahead || (i > 0 && n < asked[i-1])
	}
	if len(seen) != blocks {
		t.Errorf("%d distinct blocks asked, the package has %d", len(seen), blocks)
	}
	if !ahead {
		t.Errorf("blocks asked strictly in order %v: no request was in flight ahead of another", asked)
	}
}
