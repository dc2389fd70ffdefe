package firmware

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
)

// A Package URI on the device's own LwM2M server is pulled over the
// registration's DTLS session: every Block2 GET arrives from the address
// the device registered from (a dialed pull would come from a new socket
// after a handshake of its own), one GET per block in order, and the
// staged bytes are the package.
func TestPullFromOwnServerUsesRegistrationSession(t *testing.T) {
	fx := testFixture(t)
	files := &fileServer{t: t, data: fx.pkg, etag: []byte("etag-1"), stallAt: -1, corrupt: map[int64]bool{}}
	var mu sync.Mutex
	var from []string
	var srv *lwm2mServer
	srv = newLwM2MServer(t, false, options.WithMux(mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
		if p, _ := r.Options().Path(); r.Code() == codes.GET && p == "/fw" {
			mu.Lock()
			from = append(from, w.Conn().RemoteAddr().String())
			mu.Unlock()
			files.serve(w, r)
			return
		}
		srv.serve(w, r)
	})))
	files.stallAt = 3 // the first pass stops at block 3: the blocks before are staged one by one
	d := newDevice(t, func(c *Config) {
		c.BlockSize = 512
		c.RequestTimeout = time.Second
		c.RetryWait = 10 * time.Millisecond
	})
	startClient(t, d, srv.addr)
	conn := srv.registration(10 * time.Second)
	if err := writeURI(d.o, "coaps://"+srv.addr+"/fw"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { r := files.requests(); return len(r) > 0 && r[len(r)-1] == 3 }, 10*time.Second)
	d.o.mu.Lock()
	staged := d.o.rec.Done
	d.o.mu.Unlock()
	if staged != 3*512 {
		t.Fatalf("%d bytes recorded while block 3 is pending, want %d: blocks not staged one by one", staged, 3*512)
	}
	files.mu.Lock()
	files.stallAt = -1
	files.mu.Unlock()
	d.waitState(StateDownloaded, ResultInitial, 20*time.Second)
	stagedEquals(t, d, fx.pkg)
	// One GET per block, in order; block 3 again after the stalled try(s).
	var want []int64
	for n := int64(0); n < int64((len(fx.pkg)+511)/512); n++ {
		want = append(want, n)
	}
	var got []int64
	for _, n := range files.requests() {
		if len(got) == 0 || n != got[len(got)-1] {
			got = append(got, n)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("blocks asked for %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, a := range from {
		if a != conn.RemoteAddr().String() {
			t.Fatalf("GET %d came from %s, the registration from %s: not the server session", i, a, conn.RemoteAddr())
		}
	}
	if v, err := d.o.Read(lwm2m.ResourcePath(ObjectID, 0, ResPackageURI)); err != nil || len(v) != 1 {
		t.Fatalf("read /5/0/1: %v %v", v, err)
	}
}
