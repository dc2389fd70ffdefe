package client

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
)

// notes collects notifications on the server side.
type notes struct {
	mu  sync.Mutex
	got []note
	ch  chan note
}

type note struct {
	at   time.Time
	typ  message.Type // CON or NON on the wire
	code codes.Code
	seq  uint32
	body string
	cf   message.MediaType
}

func newNotes() *notes { return &notes{ch: make(chan note, 100)} }

func (n *notes) add(m *pool.Message) {
	r := copyResponse(m)
	seq, _ := m.Observe()
	x := note{at: time.Now(), typ: m.Type(), code: r.code, seq: seq, body: string(r.body), cf: r.cf}
	n.mu.Lock()
	n.got = append(n.got, x)
	n.mu.Unlock()
	n.ch <- x
}

func (n *notes) next(t *testing.T, within time.Duration) note {
	t.Helper()
	select {
	case x := <-n.ch:
		return x
	case <-time.After(within):
		t.Fatalf("no notification within %v", within)
		return note{}
	}
}

func (n *notes) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case x := <-n.ch:
		t.Fatalf("unexpected notification %+v", x)
	case <-time.After(within):
	}
}

func setSignal(t *testing.T, c *Client, v int64) {
	t.Helper()
	if err := c.SimpleObject(4).Set(lwm2m.ResourcePath(4, 0, ConnSignalStrength), lwm2m.Integer(v)); err != nil {
		t.Fatal(err)
	}
}

// LwM2M Core 5.1.2: no notification sooner than pmin after the previous
// one, however often the value changes; one at least every pmax.
func TestObservePminPmax(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	d := s.device(c.cfg.Endpoint)
	if r := d.do(codes.PUT, "/4/0/2", -1, nil, queryOpt("pmin=1"), queryOpt("pmax=2")); r.code != codes.Changed {
		t.Fatalf("write-attributes: %v", r.code)
	}
	n := newNotes()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	obs, err := d.conn.Observe(ctx, "/4/0/2", n.add)
	if err != nil {
		t.Fatal(err)
	}
	first := n.next(t, time.Second)
	if first.body != "-70" || first.cf != message.TextPlain {
		t.Fatalf("first notification %+v", first)
	}
	// Three changes at once: one notification, pmin after the first, with
	// the last value.
	setSignal(t, c, -71)
	setSignal(t, c, -72)
	setSignal(t, c, -73)
	x := n.next(t, 2*time.Second)
	if gap := x.at.Sub(first.at); gap < 900*time.Millisecond {
		t.Errorf("notification %v after the previous one, pmin is 1s", gap)
	}
	if x.body != "-73" {
		t.Errorf("notified %q, want the latest -73", x.body)
	}
	if x.seq <= first.seq {
		t.Errorf("observe sequence %d after %d", x.seq, first.seq)
	}
	// No change: the next one comes at pmax.
	y := n.next(t, 3*time.Second)
	if gap := y.at.Sub(x.at); gap < 1800*time.Millisecond || gap > 2800*time.Millisecond {
		t.Errorf("periodic notification after %v, pmax is 2s", gap)
	}
	if y.body != "-73" {
		t.Errorf("periodic notification %q", y.body)
	}
	if c.Observations() != 1 {
		t.Errorf("%d observations", c.Observations())
	}
	if err := obs.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	// go-coap cancels with GET Observe=1 (LwM2M Core 5.5.2).
	deadline := time.Now().Add(time.Second)
	for c.Observations() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.Observations() != 0 {
		t.Errorf("%d observations after cancel", c.Observations())
	}
}

// LwM2M Core 5.1.2: with gt/lt/st, a change notifies only when it crosses
// a threshold or moves by at least st.
func TestObserveThresholds(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	d := s.device(c.cfg.Endpoint)
	if r := d.do(codes.PUT, "/4/0/2", -1, nil, queryOpt("gt=-60"), queryOpt("lt=-90"), queryOpt("st=10")); r.code != codes.Changed {
		t.Fatalf("write-attributes: %v", r.code)
	}
	n := newNotes()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.conn.Observe(ctx, "/4/0/2", n.add); err != nil {
		t.Fatal(err)
	}
	n.next(t, time.Second) // -70
	setSignal(t, c, -65)   // moved 5, no threshold crossed
	n.none(t, 300*time.Millisecond)
	setSignal(t, c, -55) // crosses gt=-60
	if x := n.next(t, time.Second); x.body != "-55" {
		t.Errorf("notified %q, want -55", x.body)
	}
	setSignal(t, c, -62) // back below gt: a crossing too
	if x := n.next(t, time.Second); x.body != "-62" {
		t.Errorf("notified %q, want -62", x.body)
	}
	setSignal(t, c, -73) // moved 11 >= st
	if x := n.next(t, time.Second); x.body != "-73" {
		t.Errorf("notified %q, want -73", x.body)
	}
	setSignal(t, c, -79) // moved 6, nothing crossed
	n.none(t, 300*time.Millisecond)
	setSignal(t, c, -95) // crosses lt
	if x := n.next(t, time.Second); x.body != "-95" {
		t.Errorf("notified %q, want -95", x.body)
	}
}

// Observe on an instance notifies in the format asked for; deleting the
// observed instance ends the observation with 4.04.
func TestObserveInstanceAndDelete(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	d := s.device(c.cfg.Endpoint)
	srv := c.SimpleObject(1)
	srv.AddInstance(4, map[uint16]lwm2m.Value{SrvShortServerID: lwm2m.Integer(4), SrvLifetime: lwm2m.Integer(60)})
	n := newNotes()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.conn.Observe(ctx, "/1/4", n.add, acceptOpt(uint32(lwm2m.FormatTLV))); err != nil {
		t.Fatal(err)
	}
	first := n.next(t, time.Second)
	if lwm2m.ContentFormat(first.cf) != lwm2m.FormatTLV {
		t.Fatalf("first notification in %v", first.cf)
	}
	if err := srv.Set(lwm2m.ResourcePath(1, 4, SrvLifetime), lwm2m.Integer(90)); err != nil {
		t.Fatal(err)
	}
	x := n.next(t, time.Second)
	es, err := lwm2m.Decode(lwm2m.FormatTLV, lwm2m.InstancePath(1, 4), []byte(x.body), c)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		found = found || (e.Path == lwm2m.ResourcePath(1, 4, SrvLifetime) && e.Value.Int() == 90)
	}
	if !found {
		t.Errorf("notification %v lacks lifetime 90", es)
	}
	if r := d.do(codes.DELETE, "/1/4", -1, nil); r.code != codes.Deleted {
		t.Fatalf("delete: %v", r.code)
	}
	c.Changed(lwm2m.InstancePath(1, 4))
	if x := n.next(t, time.Second); x.code != codes.NotFound {
		t.Errorf("after delete: %v, want 4.04", x.code)
	}
}

// Observe-Composite (LwM2M Core 5.5.1: FETCH with Observe=0 and a path list).
func TestObserveComposite(t *testing.T) {
	s := newTestServer(t, true)
	c, _ := startClient(t, s, nil)
	d := s.device(c.cfg.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := d.conn.NewFetchRequest(ctx, "/", message.MediaType(lwm2m.FormatSenMLJSON),
		bytes.NewReader([]byte(`[{"n":"/4/0/2"},{"n":"/3/0/3"}]`)))
	if err != nil {
		t.Fatal(err)
	}
	req.SetObserve(0)
	n := newNotes()
	if _, err := d.conn.DoObserve(req, n.add); err != nil {
		t.Fatal(err)
	}
	first := n.next(t, time.Second)
	if lwm2m.ContentFormat(first.cf) != lwm2m.FormatSenMLJSON {
		t.Fatalf("first notification in %v: %s", first.cf, first.body)
	}
	setSignal(t, c, -80)
	x := n.next(t, time.Second)
	es, err := lwm2m.Decode(lwm2m.FormatSenMLJSON, lwm2m.Root, []byte(x.body), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Value.Int() != -80 || es[1].Value.Str() != "1.0.0" {
		t.Errorf("composite notification %v", es)
	}
}

// Send (LwM2M Core 6.4.1): POST /dp with the values in SenML CBOR.
func TestSend(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	if err := c.Send(context.Background(), lwm2m.ResourcePath(3, 0, DevFirmwareVersion), lwm2m.ResourcePath(5, 0, FwState)); err != nil {
		t.Fatal(err)
	}
	m := s.expect("send", time.Second)
	es, err := lwm2m.Decode(lwm2m.FormatSenMLCBOR, lwm2m.Root, []byte(m.body), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Path != lwm2m.ResourcePath(3, 0, 3) || es[0].Value.Str() != "1.0.0" {
		t.Errorf("sent %v", es)
	}
}

// Beyond MaxObservations an Observe is answered without the Observe
// option (RFC 7641 4.1: not established) and no goroutine is started.
func TestObserveLimit(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, func(c *Config) { c.MaxObservations = 1 })
	d := s.device(c.cfg.Endpoint)
	first := d.do(codes.GET, "/3/0/0", -1, nil, message.Option{ID: message.Observe, Value: []byte{}})
	if _, err := first.opts.Observe(); err != nil || first.code != codes.Content {
		t.Fatalf("first observe: %v, observe option err %v", first.code, err)
	}
	second := d.do(codes.GET, "/3/0/1", -1, nil, message.Option{ID: message.Observe, Value: []byte{}})
	if second.code != codes.Content || string(second.body) != "sim-1" {
		t.Fatalf("second observe: %v %q", second.code, second.body)
	}
	if _, err := second.opts.Observe(); err == nil {
		t.Error("observation beyond the limit was established")
	}
	if n := c.Observations(); n != 1 {
		t.Errorf("%d observations, limit 1", n)
	}
}

// RFC 7641 3.6: a server that answers a notification with Reset has
// forgotten the observation; the device stops notifying.
func TestObserveEndsOnReset(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	d := s.device(c.cfg.Endpoint)
	// A plain request with Observe=0: go-coap forgets the token after the
	// first answer, so the test server resets the next notification.
	if r := d.do(codes.GET, "/4/0/2", -1, nil, message.Option{ID: message.Observe, Value: []byte{}}); r.code != codes.Content {
		t.Fatalf("observe: %v", r.code)
	}
	if c.Observations() != 1 {
		t.Fatalf("%d observations", c.Observations())
	}
	setSignal(t, c, -61)
	s.expect("notify", 2*time.Second)
	deadline := time.Now().Add(2 * time.Second)
	for c.Observations() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.Observations() != 0 {
		t.Fatal("observation survives a Reset")
	}
}
