package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Tests of the LwM2M 1.1 and 1.2 notification attributes (Core 5.1.2):
// epmin, epmax, edge, con, hqmax.

// writeAttrs sends Write-Attributes and returns the answer code.
// observeWith writes attributes on path, then observes it; the
// notifications, the Observe answer first, go to the notes returned.
func observeWith(t *testing.T, d *device, path string, attrs ...string) *notes {
	t.Helper()
	if got := writeAttrs(t, d, path, attrs...); got != codes.Changed {
		t.Fatalf("write-attributes %v on %s: %v", attrs, path, got)
	}
	n := newNotes()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.conn.Observe(ctx, path, n.add); err != nil {
		t.Fatal(err)
	}
	return n
}

func writeAttrs(t *testing.T, d *device, path string, qs ...string) codes.Code {
	t.Helper()
	opts := make([]message.Option, len(qs))
	for i, q := range qs {
		opts[i] = queryOpt(q)
	}
	return d.do(codes.PUT, path, -1, nil, opts...).code
}

// A switch object (IPSO 3342, On/Off Switch) with a boolean resource for
// the edge attribute.
const (
	switchObject = 3342
	switchState  = 5500
)

func addSwitch(c *Client) *SimpleObject {
	o := NewSimpleObject(switchObject, "1.0", false,
		ResourceDef{ID: switchState, Name: "Digital Input State", Type: lwm2m.TypeBoolean, Operations: objects.R})
	o.AddInstance(0, map[uint16]lwm2m.Value{switchState: lwm2m.Boolean(false)})
	c.SetObject(o)
	return o
}

func TestWriteAttributes12(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	addSwitch(c)
	d := s.device(c.cfg.Endpoint)
	for _, tc := range []struct {
		path string
		qs   []string
		want codes.Code
	}{
		{"/4/0/2", []string{"epmin=2", "epmax=10"}, codes.Changed},
		{"/4/0/2", []string{"epmin=10"}, codes.BadRequest},  // epmin = epmax (10)
		{"/4/0/2", []string{"epmax=1"}, codes.BadRequest},   // epmax below epmin (2)
		{"/4/0/2", []string{"epmin=-1"}, codes.BadRequest},  // negative
		{"/4/0/2", []string{"epmax=1.5"}, codes.BadRequest}, // not an integer
		{"/4/0/2", []string{"epmin=+3"}, codes.BadRequest},  // 1*DIGIT
		{"/4/0/2", []string{"pmin=99999999999"}, codes.BadRequest},
		{"/4/0/2", []string{"edge=1"}, codes.BadRequest},  // integer resource
		{"/3342/0", []string{"edge=1"}, codes.BadRequest}, // instance level
		{"/3342/0/5500", []string{"edge=2"}, codes.BadRequest},
		{"/3342/0/5500", []string{"edge=1"}, codes.Changed},
		{"/3342/0/5500", []string{"gt=1"}, codes.BadRequest}, // gt on a boolean
		{"/4", []string{"con=2"}, codes.BadRequest},
		{"/4", []string{"con=0"}, codes.Changed},
		{"/4/0", []string{"hqmax=-1"}, codes.BadRequest},
		{"/4/0", []string{"hqmax=100000"}, codes.BadRequest},
		{"/4/0", []string{"hqmax=5"}, codes.Changed},
		{"/4/0", []string{"bogus=1"}, codes.BadRequest},
	} {
		if got := writeAttrs(t, d, tc.path, tc.qs...); got != tc.want {
			t.Errorf("write-attributes %s?%s: %v, want %v", tc.path, strings.Join(tc.qs, "&"), got, tc.want)
		}
	}
	// Discover shows each attribute where it was written.
	r := d.do(codes.GET, "/4", -1, nil, acceptOpt(40))
	for _, want := range []string{"</4>;ver=1.3;con=0,", "</4/0>;hqmax=5,", "</4/0/2>;epmin=2;epmax=10,"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("discover %q lacks %q", r.body, want)
		}
	}
	if r := d.do(codes.GET, "/3342/0/5500", -1, nil, acceptOpt(40)); string(r.body) != "</3342/0/5500>;edge=1" {
		t.Errorf("discover switch: %q", r.body)
	}
	// They inherit like pmin: the resource sees con from /4 and hqmax
	// from /4/0.
	_, _, a := c.effectiveAttributes(lwm2m.ResourcePath(4, 0, 2))
	if a.Con == nil || *a.Con != 0 || a.Hqmax == nil || *a.Hqmax != 5 || a.Epmin == nil || *a.Epmin != 2 {
		t.Errorf("effective attributes of /4/0/2: %+v", a)
	}
	// A name without a value clears it.
	if got := writeAttrs(t, d, "/4/0/2", "epmin", "epmax"); got != codes.Changed {
		t.Fatalf("clear epmin, epmax: %v", got)
	}
	if got := writeAttrs(t, d, "/4", "con"); got != codes.Changed {
		t.Fatalf("clear con: %v", got)
	}
	if a := c.AttributesOf(lwm2m.ResourcePath(4, 0, 2)); !a.empty() {
		t.Errorf("/4/0/2 after clearing: %+v", a)
	}
	if a := c.AttributesOf(lwm2m.ObjectPath(4)); !a.empty() {
		t.Errorf("/4 after clearing: %+v", a)
	}
	// epmax=0 is no maximum, so it bounds no epmin.
	if got := writeAttrs(t, d, "/4/0/2", "epmin=5", "epmax=0"); got != codes.Changed {
		t.Errorf("epmin=5&epmax=0: %v", got)
	}
}

// con=0: notifications go out non-confirmable, and confirmable again
// once con is cleared; with con=0, one is confirmable at least every
// conRefresh (RFC 7641 4.5).
func TestObserveCon(t *testing.T) {
	old := conRefresh
	conRefresh = 600 * time.Millisecond
	t.Cleanup(func() { conRefresh = old })
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	d := s.device(c.cfg.Endpoint)
	if got := writeAttrs(t, d, "/4", "con=0"); got != codes.Changed { // inherited by /4/0/2
		t.Fatalf("write-attributes: %v", got)
	}
	n := newNotes()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.conn.Observe(ctx, "/4/0/2", n.add); err != nil {
		t.Fatal(err)
	}
	n.next(t, time.Second)
	for _, v := range []int64{-71, -72} {
		setSignal(t, c, v)
		if x := n.next(t, time.Second); x.typ != message.NonConfirmable {
			t.Errorf("notification %s with con=0 is %v, want NON", x.body, x.typ)
		}
	}
	time.Sleep(conRefresh)
	setSignal(t, c, -73)
	if x := n.next(t, time.Second); x.typ != message.Confirmable {
		t.Errorf("notification %s after %v of NON is %v, want CON", x.body, conRefresh, x.typ)
	}
	setSignal(t, c, -74)
	if x := n.next(t, time.Second); x.typ != message.NonConfirmable {
		t.Errorf("notification %s right after the CON one is %v, want NON", x.body, x.typ)
	}
	if got := writeAttrs(t, d, "/4", "con"); got != codes.Changed {
		t.Fatalf("clear con: %v", got)
	}
	setSignal(t, c, -75)
	if x := n.next(t, time.Second); x.typ != message.Confirmable {
		t.Errorf("notification %s without con is %v, want CON", x.body, x.typ)
	}
}

// edge=1 notifies the rising transition only, edge=0 the falling one.
func TestObserveEdge(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	sw := addSwitch(c)
	d := s.device(c.cfg.Endpoint)
	n := observeWith(t, d, "/3342/0/5500", "edge=1")
	set := func(v bool) {
		t.Helper()
		if err := sw.Set(lwm2m.ResourcePath(switchObject, 0, switchState), lwm2m.Boolean(v)); err != nil {
			t.Fatal(err)
		}
	}
	n.next(t, time.Second) // false
	set(true)
	if x := n.next(t, time.Second); x.body != "1" {
		t.Errorf("rising edge notified %q", x.body)
	}
	set(false)
	n.none(t, 300*time.Millisecond) // falling edge: suppressed
	set(true)
	if x := n.next(t, time.Second); x.body != "1" {
		t.Errorf("second rising edge notified %q", x.body)
	}
	if got := writeAttrs(t, d, "/3342/0/5500", "edge=0"); got != codes.Changed {
		t.Fatalf("write-attributes: %v", got)
	}
	n.none(t, 200*time.Millisecond) // no transition since the last evaluation
	set(false)
	if x := n.next(t, time.Second); x.body != "0" {
		t.Errorf("falling edge notified %q", x.body)
	}
	set(true)
	n.none(t, 300*time.Millisecond)
}

// epmin: a change is evaluated no sooner than epmin after the previous
// evaluation, deferred and not lost.
func TestObserveEpmin(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	d := s.device(c.cfg.Endpoint)
	n := observeWith(t, d, "/4/0/2", "epmin=1")
	first := n.next(t, time.Second) // the Observe answer is an evaluation
	setSignal(t, c, -71)
	x := n.next(t, 2*time.Second)
	if gap := x.at.Sub(first.at); gap < 800*time.Millisecond {
		t.Errorf("change evaluated %v after the previous evaluation, epmin is 1s", gap)
	}
	if x.body != "-71" {
		t.Errorf("notified %q, want -71", x.body)
	}
	setSignal(t, c, -72)
	y := n.next(t, 2*time.Second)
	if gap := y.at.Sub(x.at); gap < 800*time.Millisecond {
		t.Errorf("second change evaluated %v after the previous evaluation", gap)
	}
	if y.body != "-72" {
		t.Errorf("notified %q, want -72", y.body)
	}
}

// quietObject hides a SimpleObject's changes from the client: it reads
// the values, but nothing pokes the observations when they change.
type quietObject struct{ *SimpleObject }

func (quietObject) SetChangeHook(func(lwm2m.Path)) {}

// epmax: the value is read and evaluated at least every epmax, so a
// change nobody reports is notified anyway; gt/lt/st still apply.
func TestObserveEpmax(t *testing.T) {
	s := newTestServer(t, false)
	c, _ := startClient(t, s, nil)
	temp := NewSimpleObject(3303, "1.0", false,
		ResourceDef{ID: 5700, Name: "Sensor Value", Type: lwm2m.TypeFloat, Operations: objects.R})
	temp.AddInstance(0, map[uint16]lwm2m.Value{5700: lwm2m.Float(20)})
	c.SetObject(quietObject{temp})
	d := s.device(c.cfg.Endpoint)
	n := observeWith(t, d, "/3303/0/5700", "epmax=1", "st=2")
	first := n.next(t, time.Second)
	set := func(v float64) {
		t.Helper()
		if err := temp.Set(lwm2m.ResourcePath(3303, 0, 5700), lwm2m.Float(v)); err != nil {
			t.Fatal(err)
		}
	}
	set(21) // below st: evaluated at epmax, not notified
	set(25) // moved 5 >= st
	x := n.next(t, 2*time.Second)
	if gap := x.at.Sub(first.at); gap < 800*time.Millisecond || gap > 1800*time.Millisecond {
		t.Errorf("unreported change notified after %v, epmax is 1s", gap)
	}
	if x.body != "25" {
		t.Errorf("notified %q, want 25", x.body)
	}
	set(26) // moved 1 < st: the next evaluations notify nothing
	n.none(t, 1300*time.Millisecond)
}

// hqmax=N: a device asleep in queue mode keeps the N latest notifications
// with their times and sends them when it wakes, which it does when the
// queue is full; in SenML as one pack of time-stamped records, in other
// formats one by one.
func TestObserveHqmax(t *testing.T) {
	for _, cf := range []lwm2m.ContentFormat{lwm2m.FormatSenMLJSON, lwm2m.FormatText} {
		t.Run(cf.String(), func(t *testing.T) {
			s := newTestServer(t, false)
			c, ev := startClient(t, s, func(c *Config) {
				c.Queue = true
				c.QueueWait = 300 * time.Millisecond
			})
			d := s.device(c.cfg.Endpoint)
			if got := writeAttrs(t, d, "/4/0/2", "hqmax=3"); got != codes.Changed {
				t.Fatalf("write-attributes: %v", got)
			}
			n := newNotes()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := d.conn.Observe(ctx, "/4/0/2", n.add, acceptOpt(uint32(cf))); err != nil {
				t.Fatal(err)
			}
			n.next(t, time.Second)
			ev.wait(t, EventSleeping, 2*time.Second)
			start := time.Now()
			for i, v := range []int64{-80, -81, -82, -83} {
				if i == 3 {
					// The queue is full after three: the device wakes and
					// sends them.
					ev.wait(t, EventWakeup, 2*time.Second)
					break
				}
				setSignal(t, c, v)
				time.Sleep(60 * time.Millisecond)
			}
			if cf == lwm2m.FormatSenMLJSON {
				x := n.next(t, 2*time.Second)
				es, err := lwm2m.DecodeTimed(cf, lwm2m.ResourcePath(4, 0, 2), []byte(x.body), c)
				if err != nil {
					t.Fatalf("history %s: %v", x.body, err)
				}
				if len(es) != 3 {
					t.Fatalf("history %s: %d records, want 3", x.body, len(es))
				}
				prev := start.Add(-10 * time.Millisecond)
				for i, e := range es {
					at := e.At(time.Now())
					if e.Value.Int() != int64(-80-i) || at.Before(prev) || at.After(time.Now()) {
						t.Errorf("record %d: %v at %v (after %v)", i, e.Value, at, prev)
					}
					prev = at
				}
			} else {
				for _, want := range []string{"-80", "-81", "-82"} {
					if x := n.next(t, 2*time.Second); x.body != want {
						t.Errorf("queued notification %q, want %s", x.body, want)
					}
				}
			}
			n.none(t, 200*time.Millisecond)
		})
	}
}
