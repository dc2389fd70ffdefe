package firmware

import (
	"bytes"
	"testing"
	"time"
)

func stagedEquals(t *testing.T, d *device, want []byte) {
	t.Helper()
	d.o.flashMu.Lock()
	got, err := d.o.st.read(int64(len(want)))
	d.o.flashMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("staged package differs from the one served")
	}
}

func TestPullOverCoAPWithBlock2ThenUpdate(t *testing.T) {
	fx := testFixture(t)
	srv := newFileServer(t, false, fx.pkg)
	rebooted := make(chan inplaceBoot, 1)
	d := newDevice(t, func(c *Config) {
		c.BlockSize = 256
		c.OnReboot = func(b inplaceBoot, err error) { rebooted <- b }
	})
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, 10*time.Second)
	stagedEquals(t, d, fx.pkg)
	reqs := srv.requests()
	if want := (len(fx.pkg) + 255) / 256; len(reqs) != want {
		t.Errorf("%d GETs for %d bytes in 256-byte blocks, want %d", len(reqs), len(fx.pkg), want)
	}
	for i, n := range reqs {
		if n != int64(i) {
			t.Fatalf("request %d asked for block %d", i, n)
		}
	}
	if err := d.o.Execute(pUpdate, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-rebooted:
		if b.Version != "2.0" {
			t.Errorf("booted %q", b.Version)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reboot")
	}
	d.waitState(StateIdle, ResultSuccess, time.Second)
}

func TestPullOverCoAPSWithTheDevicePSK(t *testing.T) {
	fx := testFixture(t)
	srv := newFileServer(t, true, fx.pkg)
	d := newDevice(t, func(c *Config) { c.PSKIdentity, c.PSKKey = testPSKID, testPSKKey })
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, 10*time.Second)
	stagedEquals(t, d, fx.pkg)
}

func TestPullCoAPSWithoutCredentialsIsResult9(t *testing.T) {
	srv := newFileServer(t, true, testFixture(t).pkg)
	d := newDevice(t, nil)
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultUnsupportedProtocol, 5*time.Second)
}

// A server that goes away mid-download and comes back: the device retries
// and continues at the block after the last one stored.
func TestPullResumesAfterForcedDisconnect(t *testing.T) {
	fx := testFixture(t)
	srv := newFileServer(t, false, fx.pkg)
	d := newDevice(t, func(c *Config) { c.BlockSize = 512; c.Retries = 20; c.RetryWait = 50 * time.Millisecond })
	srv.mu.Lock()
	srv.stallAt = 10
	srv.mu.Unlock()
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { done, _ := d.o.Progress(); return done == 10*512 }, 5*time.Second)
	srv.shutdown()
	time.Sleep(100 * time.Millisecond)
	srv.mu.Lock()
	srv.stallAt, srv.reqs = -1, nil
	srv.mu.Unlock()
	srv.start(srv.addr)
	d.waitState(StateDownloaded, ResultInitial, 10*time.Second)
	stagedEquals(t, d, fx.pkg)
	if reqs := srv.requests(); len(reqs) == 0 || reqs[0] != 10 {
		t.Errorf("after the restart the device asked for blocks %v..., want 10 first", reqs[:min(3, len(reqs))])
	}
}

// Connection lost for good: result 4; writing the same URI again resumes.
func TestPullConnectionLostIsResult4AndSameURIResumes(t *testing.T) {
	fx := testFixture(t)
	srv := newFileServer(t, false, fx.pkg)
	d := newDevice(t, func(c *Config) { c.BlockSize = 1024 })
	srv.mu.Lock()
	srv.stallAt = 5
	srv.mu.Unlock()
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultConnectionLost, 20*time.Second)
	srv.mu.Lock()
	srv.stallAt, srv.reqs = -1, nil
	srv.mu.Unlock()
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, 10*time.Second)
	stagedEquals(t, d, fx.pkg)
	if reqs := srv.requests(); reqs[0] != 5 {
		t.Errorf("resumed at block %d, want 5", reqs[0])
	}
}

// A reboot mid-download: the new process-equivalent (flash file and state
// directory reopened) continues at the stored block.
func TestPullResumesAfterReboot(t *testing.T) {
	fx := testFixture(t)
	srv := newFileServer(t, true, fx.pkg)
	d := newDevice(t, func(c *Config) { c.BlockSize = 256; c.PSKIdentity, c.PSKKey = testPSKID, testPSKKey })
	srv.mu.Lock()
	srv.stallAt = 17
	srv.mu.Unlock()
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { done, _ := d.o.Progress(); return done == 17*256 }, 5*time.Second)
	srv.mu.Lock()
	srv.stallAt, srv.reqs = -1, nil
	srv.mu.Unlock()
	d.reboot()
	d.waitState(StateDownloaded, ResultInitial, 10*time.Second)
	stagedEquals(t, d, fx.pkg)
	if reqs := srv.requests(); reqs[0] != 17 {
		t.Errorf("after reboot the device asked first for block %d, want 17", reqs[0])
	}
}

// RFC 7252 5.10.6: a new ETag is a new package; the download starts over.
func TestPullETagChangeRestartsFromZero(t *testing.T) {
	fx := testFixture(t)
	v3 := mustMake(fx.old, append(append([]byte(nil), fx.new...), bytes.Repeat([]byte{7}, 999)...), fx.key, testDeviceType, "3.0")
	srv := newFileServer(t, false, fx.pkg)
	d := newDevice(t, func(c *Config) { c.BlockSize = 256; c.Retries = 20 })
	srv.mu.Lock()
	srv.stallAt = 8
	srv.mu.Unlock()
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { done, _ := d.o.Progress(); return done == 8*256 }, 5*time.Second)
	srv.mu.Lock()
	srv.data, srv.etag, srv.stallAt, srv.reqs = v3, []byte("etag-3"), -1, nil
	srv.mu.Unlock()
	d.waitState(StateDownloaded, ResultInitial, 10*time.Second)
	stagedEquals(t, d, v3)
	if done, _ := d.o.Progress(); done != int64(len(v3)) {
		t.Errorf("%d bytes counted, package has %d", done, len(v3))
	}
	reqs := srv.requests()
	if len(reqs) < 2 || reqs[1] != 0 {
		t.Errorf("after the ETag changed the device asked for %v..., want block 0 next", reqs[:min(3, len(reqs))])
	}
	es, _ := d.o.Read(lwmPath(ResPkgVersion))
	if es[0].Value.Str() != "3.0" {
		t.Errorf("PkgVersion %v, want 3.0", es[0].Value)
	}
}

func TestPullCorruptedBlockIsResult5(t *testing.T) {
	fx := testFixture(t)
	srv := newFileServer(t, false, fx.pkg)
	srv.corrupt[3] = true
	d := newDevice(t, nil)
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultIntegrityFailure, 10*time.Second)
}

func TestPullPackageBiggerThanFlashIsResult2(t *testing.T) {
	d := newDevice(t, nil)
	srv := newFileServer(t, false, make([]byte, d.o.st.size()+100))
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultNotEnoughFlash, 10*time.Second)
	if reqs := srv.requests(); len(reqs) != 1 {
		t.Errorf("%d requests: the Size2 of the first answer should have stopped the download", len(reqs))
	}
}

func TestPullUnreachableURIIsResult7(t *testing.T) {
	srv := newFileServer(t, false, nil)
	addr := srv.addr
	srv.shutdown() // nothing listens there now
	d := newDevice(t, nil)
	if err := writeURI(d.o, "coap://"+addr+"/fw"); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultInvalidURI, 20*time.Second)
}

func TestPullNotFoundIsResult7(t *testing.T) {
	srv := newFileServer(t, false, testFixture(t).pkg)
	d := newDevice(t, nil)
	if err := writeURI(d.o, "coap://"+srv.addr+"/nothing-here"); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultInvalidURI, 10*time.Second)
}

func TestCancelDuringPullIsResult10(t *testing.T) {
	srv := newFileServer(t, false, testFixture(t).pkg)
	srv.stallAt = 3
	d := newDevice(t, nil)
	if err := writeURI(d.o, srv.uri()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { done, _ := d.o.Progress(); return done == 3*1024 }, 5*time.Second)
	if err := d.o.Execute(pCancel, ""); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateIdle, ResultCancelled, time.Second)
	if done, _ := d.o.Progress(); done != 0 {
		t.Errorf("%d bytes still counted after cancel", done)
	}
}

// A link that drops and duplicates datagrams both ways: CoAP's
// retransmissions and the device's retries still get the whole package.
func TestPullOverLossyLinkCompletes(t *testing.T) {
	fx := testFixture(t)
	srv := newFileServer(t, false, fx.pkg)
	proxy := newLossyProxy(t, srv.addr, 0.15, 0.10)
	d := newDevice(t, func(c *Config) { c.BlockSize = 512; c.Retries = 50 })
	if err := writeURI(d.o, "coap://"+proxy.addr+"/fw"); err != nil {
		t.Fatal(err)
	}
	d.waitState(StateDownloaded, ResultInitial, 30*time.Second)
	stagedEquals(t, d, fx.pkg)
	proxy.down.mu.Lock()
	dropped, dupped := proxy.down.dropped, proxy.down.dupped
	proxy.down.mu.Unlock()
	if dropped == 0 || dupped == 0 {
		t.Errorf("the link dropped %d and duplicated %d datagrams: the test tested nothing", dropped, dupped)
	}
}

func waitFor(t *testing.T, cond func() bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkPullLoopback measures a whole pull of the test package over
// CoAP on loopback in 1024-byte blocks: a GET, a flash program and a
// synced progress record per block.
func BenchmarkPullLoopback(b *testing.B) {
	fx := testFixture(b)
	srv := newFileServer(b, false, fx.pkg)
	d := newDevice(b, nil)
	b.SetBytes(int64(len(fx.pkg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := writeURI(d.o, ""); err != nil {
			b.Fatal(err)
		}
		if err := writeURI(d.o, srv.uri()); err != nil {
			b.Fatal(err)
		}
		d.waitState(StateDownloaded, ResultInitial, 10*time.Second)
	}
}
