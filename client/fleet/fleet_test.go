package fleet

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/client/linksim"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/servertest"
	"github.com/fotastack/fota/server/store"
)

// provision stores the fleet's PSK credentials in the server's store.
func provision(t *testing.T, st store.Store, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep, id, key := Credentials(prefix, i)
			errs <- st.PutCredential(store.Credential{Endpoint: ep, Mode: "psk", Identity: id, Key: key})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// startRegistered starts a fleet and waits until every device of it has
// registered; the fleet stops when the test ends.
func startRegistered(t *testing.T, cfg Config) *Fleet {
	t.Helper()
	f, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.WaitRegistered(ctx, cfg.Devices); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCredentialsAreDeterministicAndDistinct(t *testing.T) {
	ep, id, key := Credentials("f1-", 7)
	ep2, id2, key2 := Credentials("f1-", 7)
	if ep != "ep-7" || id != "f1-ep-7" || len(key) != 16 || ep != ep2 || id != id2 || string(key) != string(key2) {
		t.Fatalf("credentials %q %q %x / %q %q %x", ep, id, key, ep2, id2, key2)
	}
	if _, _, k := Credentials("f1-", 8); string(k) == string(key) {
		t.Fatal("two devices share a key")
	}
	if _, _, k := Credentials("f2-", 7); string(k) == string(key) {
		t.Fatal("two prefixes give the same key")
	}
}

// A fleet of 50 registers over DTLS-PSK against the real server with
// hibernation on; the idle sessions hibernate; a server-initiated Read to
// a hibernated device resumes its session and gets the answer.
func TestFleetRegistersAndHibernatedDeviceAnswersRead(t *testing.T) {
	const n = 50
	srv := servertest.Start(t, func(c *server.Config) { c.HibernateAfter = 300 * time.Millisecond })
	provision(t, srv.Store, "t-", n)
	f := startRegistered(t, Config{
		Devices: n, ServerURI: "coaps://" + srv.CoAPSAddr().String(), PSKPrefix: "t-", Rate: 200,
	})
	waitAsleep(t, srv.Server, n)
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	resp, err := srv.Read(rctx, "ep-17", "/3/0/2", nil)
	if err != nil {
		t.Fatalf("Read of a hibernated device: %v", err)
	}
	if resp.Code.String() != "Content" || string(resp.Payload) != "ep-17" {
		t.Fatalf("Read /3/0/2: %v %q, want Content \"ep-17\"", resp.Code, resp.Payload)
	}
	st := srv.DTLSStats()
	if st.Handshakes != n || st.Resumptions < 1 {
		t.Fatalf("stats %+v: want %d handshakes and a resumption", st, n)
	}
	if s := f.Stats(); s.Registrations != n || s.Failures != 0 {
		t.Fatalf("fleet stats %+v", s)
	}
}

// Devices behind a carrier NAT that forgets idle bindings: after the
// rebinding, the device's Update reaches the server from a new port under
// its Connection ID, the hibernated session resumes there, and no device
// handshakes or registers again; the server then reaches the device at
// its new address.
func TestNATRebindingUnderCIDKeepsSessionAndRegistration(t *testing.T) {
	const n = 10
	srv := servertest.Start(t, func(c *server.Config) { c.HibernateAfter = 300 * time.Millisecond })
	provision(t, srv.Store, "nat-", n)
	link := linksim.Profile{Name: "nat", Latency: 5 * time.Millisecond, NATTimeout: 1500 * time.Millisecond}
	f := startRegistered(t, Config{
		Devices: n, ServerURI: "coaps://" + srv.CoAPSAddr().String(), PSKPrefix: "nat-", Profile: link, Seed: 1,
	})
	before := map[string]string{}
	for i := 0; i < n; i++ {
		ep, _, _ := Credentials("nat-", i)
		before[ep] = srv.Device(ep).Registration().Address
	}
	waitAsleep(t, srv.Server, n)
	time.Sleep(1600 * time.Millisecond) // past the NAT timeout
	for _, c := range f.Clients() {
		c.TriggerUpdate()
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.Stats().Rebinds < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d links rebound", f.Stats().Rebinds, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < n; i++ {
		ep, _, _ := Credentials("nat-", i)
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := srv.Read(rctx, ep, "/3/0/2", nil)
		rcancel()
		if err != nil || string(resp.Payload) != ep {
			t.Fatalf("Read of %s after rebinding: %v", ep, err)
		}
		if srv.Device(ep).Session().RemoteAddr().String() == before[ep] {
			t.Fatalf("%s: session still at its old address %s", ep, before[ep])
		}
	}
	if st := srv.DTLSStats(); st.Handshakes != n {
		t.Fatalf("%d handshakes for %d devices: a rebinding re-handshook", st.Handshakes, n)
	}
	if s := f.Stats(); s.Registrations != n {
		t.Fatalf("%d registrations for %d devices: a rebinding re-registered", s.Registrations, n)
	}
}

func waitAsleep(t *testing.T, srv *server.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.DTLSStats().Asleep < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sessions hibernated: %+v", srv.DTLSStats().Asleep, n, srv.DTLSStats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The nb-iot profile (RTT 2 s, jitter 1 s) gets a flight interval of 1.5
// times the longest round trip and an ACK_TIMEOUT above it; lan keeps
// the defaults.
func TestTransmissionFollowsProfile(t *testing.T) {
	nb, _ := linksim.Lookup("nb-iot")
	tr := Transmission(nb)
	if tr.FlightInterval != 4500*time.Millisecond {
		t.Errorf("nb-iot flight interval %v, want 4.5 s", tr.FlightInterval)
	}
	if tr.AckTimeout <= nb.RTT()+nb.Jitter || tr.AckTimeout > 2*(nb.RTT()+nb.Jitter) {
		t.Errorf("nb-iot ACK_TIMEOUT %v, want above the longest round trip %v", tr.AckTimeout, nb.RTT()+nb.Jitter)
	}
	lan, _ := linksim.Lookup("lan")
	if tr := Transmission(lan); tr.FlightInterval != 0 || tr.AckTimeout != 0 {
		t.Errorf("lan: %+v, want the defaults", tr)
	}
}

// Spread over loopback addresses, devices on both sides of an address
// boundary register from their own address, and the server's requests
// reach them there.
func TestFleetSpreadsOverLoopbackAddresses(t *testing.T) {
	const first, n = devicesPerAddress - 5, 10
	srv := servertest.Start(t)
	for i := first; i < first+n; i++ {
		ep, id, key := Credentials("s-", i)
		if err := srv.Store.PutCredential(store.Credential{Endpoint: ep, Mode: "psk", Identity: id, Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	startRegistered(t, Config{
		Devices: n, First: first, ServerURI: "coaps://" + srv.CoAPSAddr().String(), PSKPrefix: "s-", Rate: 0,
		SpreadLoopback: true,
	})
	hosts := map[string]int{}
	for i := first; i < first+n; i++ {
		ep, _, _ := Credentials("s-", i)
		d := srv.Device(ep)
		if d == nil {
			t.Fatalf("%s not registered", ep)
		}
		host, _, err := net.SplitHostPort(d.Registration().Address)
		if err != nil {
			t.Fatal(err)
		}
		if want := loopbackFor(i, 0).String(); host != want {
			t.Fatalf("%s registered from %s, want %s", ep, host, want)
		}
		hosts[host]++
	}
	if hosts["127.1.0.1"] != 5 || hosts["127.1.0.2"] != 5 {
		t.Fatalf("devices per address %v, want 5 on 127.1.0.1 and 5 on 127.1.0.2", hosts)
	}
	ep, _, _ := Credentials("s-", first+n-1)
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	resp, err := srv.Read(rctx, ep, "/3/0/2", nil)
	if err != nil || string(resp.Payload) != ep {
		t.Fatalf("Read /3/0/2 of %s on %s: %v %v", ep, loopbackFor(first+n-1, 0), resp, err)
	}
}
