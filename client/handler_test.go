package client

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// decodeAnswer decodes a device answer with the lwm2m codecs.
func decodeAnswer(t *testing.T, c *Client, r response, base string) map[string]lwm2m.Value {
	t.Helper()
	if !r.hasCF {
		t.Fatalf("answer %v has no content format", r.code)
	}
	es, err := lwm2m.Decode(lwm2m.ContentFormat(r.cf), lwm2m.MustParsePath(base), r.body, c)
	if err != nil {
		t.Fatalf("decode %v answer for %s: %v", lwm2m.ContentFormat(r.cf), base, err)
	}
	out := map[string]lwm2m.Value{}
	for _, e := range es {
		out[e.Path.String()] = e.Value
	}
	return out
}

// Every DM operation over DTLS-PSK, answered in the format asked for, and
// the error codes of LwM2M Core 6.4 for bad requests.
func TestDeviceManagementOperations(t *testing.T) {
	s := newTestServer(t, true)
	c, _ := startClient(t, s, nil)
	d := s.device(c.cfg.Endpoint)

	t.Run("read single resource as text by default", func(t *testing.T) {
		r := d.do(codes.GET, "/3/0/0", -1, nil)
		if r.code != codes.Content || r.cf != message.TextPlain || string(r.body) != "fotastack" {
			t.Fatalf("got %v cf %v %q", r.code, r.cf, r.body)
		}
	})
	for _, cf := range []lwm2m.ContentFormat{lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR} {
		t.Run("read instance as "+cf.String(), func(t *testing.T) {
			r := d.do(codes.GET, "/3/0", -1, nil, acceptOpt(uint32(cf)))
			if r.code != codes.Content || lwm2m.ContentFormat(r.cf) != cf {
				t.Fatalf("got %v cf %v: %s", r.code, r.cf, r.body)
			}
			v := decodeAnswer(t, c, r, "/3/0")
			if v["/3/0/3"].Str() != "1.0.0" || v["/3/0/1"].Str() != "sim-1" || v["/3/0/11/0"].Int() != 0 {
				t.Errorf("decoded %v", v)
			}
			if _, ok := v["/3/0/4"]; ok {
				t.Error("executable Reboot is in a read")
			}
		})
	}
	t.Run("read object defaults to senml cbor", func(t *testing.T) {
		r := d.do(codes.GET, "/5", -1, nil)
		if r.code != codes.Content || lwm2m.ContentFormat(r.cf) != lwm2m.FormatSenMLCBOR {
			t.Fatalf("got %v cf %v", r.code, r.cf)
		}
		v := decodeAnswer(t, c, r, "/5")
		if v["/5/0/3"].Int() != FwStateIdle || v["/5/0/8/1"].Int() != 1 || v["/5/0/9"].Int() != FwDeliveryBoth {
			t.Errorf("decoded %v", v)
		}
	})
	t.Run("read multiple resource instance", func(t *testing.T) {
		r := d.do(codes.GET, "/5/0/8/1", -1, nil)
		if r.code != codes.Content || string(r.body) != "1" {
			t.Fatalf("got %v %q", r.code, r.body)
		}
	})

	errs := []struct {
		name   string
		code   codes.Code
		method codes.Code
		path   string
		cf     int
		body   string
		opts   []message.Option
	}{
		{"unknown object", codes.NotFound, codes.GET, "/99", -1, "", nil},
		{"unknown instance", codes.NotFound, codes.GET, "/3/7", -1, "", nil},
		{"unknown resource", codes.NotFound, codes.GET, "/3/0/99", -1, "", nil},
		{"not an lwm2m path", codes.NotFound, codes.GET, "/rd/x", -1, "", nil},
		{"read executable", codes.MethodNotAllowed, codes.GET, "/3/0/4", -1, "", nil},
		{"read security object", codes.Unauthorized, codes.GET, "/0/0", -1, "", nil},
		{"read root", codes.MethodNotAllowed, codes.GET, "/", -1, "", nil},
		{"text for an instance", codes.NotAcceptable, codes.GET, "/3/0", -1, "", []message.Option{acceptOpt(0)}},
		{"unknown accept", codes.NotAcceptable, codes.GET, "/3/0/0", -1, "", []message.Option{acceptOpt(9999)}},
		{"write read-only", codes.MethodNotAllowed, codes.PUT, "/3/0/0", 0, "x", nil},
		{"write without format", codes.UnsupportedMediaType, codes.PUT, "/3/0/14", -1, "+01:00", nil},
		{"write unknown format", codes.UnsupportedMediaType, codes.PUT, "/3/0/14", 9999, "+01:00", nil},
		{"write bad tlv", codes.BadRequest, codes.PUT, "/3/0", int(lwm2m.FormatTLV), "\xff\xff", nil},
		{"write bad value", codes.BadRequest, codes.PUT, "/1/0/1", 0, "soon", nil},
		{"write object", codes.MethodNotAllowed, codes.PUT, "/3", 0, "1", nil},
		{"execute read-only", codes.MethodNotAllowed, codes.POST, "/3/0/0", -1, "", nil},
		{"execute bad args", codes.BadRequest, codes.POST, "/3/0/4", 0, "x='", nil},
		{"create single-instance", codes.MethodNotAllowed, codes.POST, "/3", -1, "", nil},
		{"delete resource", codes.MethodNotAllowed, codes.DELETE, "/3/0/0", -1, "", nil},
		{"delete single-instance", codes.MethodNotAllowed, codes.DELETE, "/3/0", -1, "", nil},
		{"delete unknown", codes.NotFound, codes.DELETE, "/1/9", -1, "", nil},
		{"discover unknown", codes.NotFound, codes.GET, "/3/0/99", -1, "", []message.Option{acceptOpt(40)}},
		{"attribute unknown", codes.BadRequest, codes.PUT, "/3/0/13", -1, "", []message.Option{queryOpt("foo=1")}},
		{"attribute not a number", codes.BadRequest, codes.PUT, "/4/0/2", -1, "", []message.Option{queryOpt("gt=high")}},
		{"gt on a string", codes.BadRequest, codes.PUT, "/3/0/0", -1, "", []message.Option{queryOpt("gt=1")}},
		{"lt above gt", codes.BadRequest, codes.PUT, "/4/0/2", -1, "", []message.Option{queryOpt("gt=1"), queryOpt("lt=5")}},
		{"composite on a path", codes.MethodNotAllowed, codes.FETCH, "/3", int(lwm2m.FormatSenMLJSON), `[{"n":"/3/0/0"}]`, nil},
		{"composite bad list", codes.BadRequest, codes.FETCH, "/", int(lwm2m.FormatSenMLJSON), `[{"n":"/x"}]`, nil},
		{"composite in tlv", codes.UnsupportedMediaType, codes.FETCH, "/", int(lwm2m.FormatTLV), "\x00", nil},
		{"write-composite read-only", codes.MethodNotAllowed, codes.IPATCH, "/", int(lwm2m.FormatSenMLJSON), `[{"n":"/3/0/0","vs":"x"}]`, nil},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := d.do(tc.method, tc.path, tc.cf, body, tc.opts...)
			if r.code != tc.code {
				t.Errorf("%v %s: got %v (%s), want %v", tc.method, tc.path, r.code, r.body, tc.code)
			}
			if len(r.body) == 0 {
				t.Error("error answer has no diagnostic payload")
			}
		})
	}

	t.Run("write replace and read back", func(t *testing.T) {
		if r := d.do(codes.PUT, "/3/0/14", 0, []byte("+02:00")); r.code != codes.Changed {
			t.Fatalf("write: %v %s", r.code, r.body)
		}
		if r := d.do(codes.GET, "/3/0/14", -1, nil); string(r.body) != "+02:00" {
			t.Errorf("read back %q", r.body)
		}
	})
	t.Run("partial update of an instance in tlv", func(t *testing.T) {
		body, err := lwm2m.Encode(lwm2m.FormatTLV, lwm2m.InstancePath(3, 0), []lwm2m.Entry{
			{Path: lwm2m.ResourcePath(3, 0, DevTimezone), Value: lwm2m.String("Europe/Paris")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := d.do(codes.POST, "/3/0", int(lwm2m.FormatTLV), body); r.code != codes.Changed {
			t.Fatalf("write: %v %s", r.code, r.body)
		}
		v, _ := c.SimpleObject(3).Get(lwm2m.ResourcePath(3, 0, DevTimezone))
		if v.Str() != "Europe/Paris" {
			t.Errorf("timezone %v", v)
		}
		if v, _ := c.SimpleObject(3).Get(lwm2m.ResourcePath(3, 0, DevUTCOffset)); v.Str() != "+02:00" {
			t.Errorf("partial update touched another resource: %v", v)
		}
	})
	t.Run("write current time", func(t *testing.T) {
		if r := d.do(codes.PUT, "/3/0/13", 0, []byte("1000000000")); r.code != codes.Changed {
			t.Fatalf("write: %v %s", r.code, r.body)
		}
		r := d.do(codes.GET, "/3/0/13", -1, nil)
		if !strings.HasPrefix(string(r.body), "10000000") {
			t.Errorf("time after write %q", r.body)
		}
	})
	t.Run("execute with arguments", func(t *testing.T) {
		var mu sync.Mutex
		var got string
		c.SimpleObject(3).OnExecute(DevReboot, func(_ uint16, args string) error {
			mu.Lock()
			got = args
			mu.Unlock()
			return nil
		})
		if r := d.do(codes.POST, "/3/0/4", 0, []byte("0='now',1")); r.code != codes.Changed {
			t.Fatalf("execute: %v %s", r.code, r.body)
		}
		mu.Lock()
		defer mu.Unlock()
		if got != "0='now',1" {
			t.Errorf("reboot got args %q", got)
		}
	})
	t.Run("create and delete an instance", func(t *testing.T) {
		body, err := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.ObjectPath(1), []lwm2m.Entry{
			{Path: lwm2m.ResourcePath(1, 3, SrvShortServerID), Value: lwm2m.Integer(7)},
			{Path: lwm2m.ResourcePath(1, 3, SrvLifetime), Value: lwm2m.Integer(600)},
			{Path: lwm2m.ResourcePath(1, 3, SrvBinding), Value: lwm2m.String("U")},
		})
		if err != nil {
			t.Fatal(err)
		}
		r := d.do(codes.POST, "/1", int(lwm2m.FormatSenMLJSON), body)
		if r.code != codes.Created {
			t.Fatalf("create: %v %s", r.code, r.body)
		}
		loc, _ := r.opts.LocationPath()
		if loc != "/1/3" {
			t.Errorf("location %q, want /1/3", loc)
		}
		if v := decodeAnswer(t, c, d.do(codes.GET, "/1/3", -1, nil), "/1/3"); v["/1/3/1"].Int() != 600 {
			t.Errorf("created instance reads %v", v)
		}
		// The object list changed: the next Update carries it.
		up := s.expect("update", 2*time.Second)
		if !strings.Contains(up.body, "</1/3>") {
			t.Errorf("update after create lacks </1/3>: %q", up.body)
		}
		if r := d.do(codes.POST, "/1", -1, nil); r.code != codes.Created {
			t.Errorf("create without payload: %v", r.code)
		} else if loc, _ := r.opts.LocationPath(); loc != "/1/1" {
			t.Errorf("create without payload got %q, want the lowest free /1/1", loc)
		}
		if r := d.do(codes.DELETE, "/1/3", -1, nil); r.code != codes.Deleted {
			t.Fatalf("delete: %v %s", r.code, r.body)
		}
		if r := d.do(codes.GET, "/1/3", -1, nil); r.code != codes.NotFound {
			t.Errorf("read after delete: %v", r.code)
		}
	})
	t.Run("write-attributes and discover", func(t *testing.T) {
		if r := d.do(codes.PUT, "/4/0/2", -1, nil, queryOpt("pmin=10"), queryOpt("pmax=60"), queryOpt("gt=-50"), queryOpt("lt=-90"), queryOpt("st=5")); r.code != codes.Changed {
			t.Fatalf("write-attributes: %v %s", r.code, r.body)
		}
		if r := d.do(codes.PUT, "/4", -1, nil, queryOpt("pmax=300")); r.code != codes.Changed {
			t.Fatalf("write-attributes on object: %v %s", r.code, r.body)
		}
		r := d.do(codes.GET, "/4", -1, nil, acceptOpt(40))
		if r.code != codes.Content || r.cf != message.AppLinkFormat {
			t.Fatalf("discover: %v cf %v", r.code, r.cf)
		}
		for _, want := range []string{"</4>;ver=1.3;pmax=300", "</4/0>", "</4/0/2>;pmin=10;pmax=60;gt=-50;lt=-90;st=5", "</4/0/1>;dim=1"} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("discover %q lacks %q", r.body, want)
			}
		}
		// An attribute without value is removed (LwM2M Core 5.4.4).
		d.do(codes.PUT, "/4/0/2", -1, nil, queryOpt("st"))
		if a := c.AttributesOf(lwm2m.ResourcePath(4, 0, 2)); a.St != nil || a.Pmin == nil {
			t.Errorf("after clearing st: %+v", a)
		}
		r = d.do(codes.GET, "/3/0/11", -1, nil, acceptOpt(40))
		if string(r.body) != "</3/0/11>;dim=1" {
			t.Errorf("discover resource: %q", r.body)
		}
	})
	t.Run("read-composite", func(t *testing.T) {
		for _, cf := range []lwm2m.ContentFormat{lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR} {
			req := []byte(`[{"n":"/3/0/0"},{"n":"/99/0/0"},{"bn":"/5/0/","n":"3"}]`)
			if cf == lwm2m.FormatSenMLCBOR {
				// [{0: "/3/0/0"}, {0: "/99/0/0"}, {-2: "/5/0/", 0: "3"}]
				req = []byte("\x83\xa1\x00\x66/3/0/0\xa1\x00\x67/99/0/0\xa2\x21\x65/5/0/\x00\x613")
			}
			r := d.do(codes.FETCH, "/", int(cf), req)
			if r.code != codes.Content || lwm2m.ContentFormat(r.cf) != cf {
				t.Fatalf("read-composite %v: %v cf %v %s", cf, r.code, r.cf, r.body)
			}
			v := decodeAnswer(t, c, r, "/")
			if len(v) != 2 || v["/3/0/0"].Str() != "fotastack" || v["/5/0/3"].Int() != 0 {
				t.Errorf("read-composite %v: %v", cf, v)
			}
		}
	})
	t.Run("write-composite", func(t *testing.T) {
		body := []byte(`[{"n":"/3/0/15","vs":"Asia/Tokyo"},{"n":"/1/0/3","v":120}]`)
		if r := d.do(codes.IPATCH, "/", int(lwm2m.FormatSenMLJSON), body); r.code != codes.Changed {
			t.Fatalf("write-composite: %v %s", r.code, r.body)
		}
		if v, _ := c.SimpleObject(3).Get(lwm2m.ResourcePath(3, 0, 15)); v.Str() != "Asia/Tokyo" {
			t.Errorf("timezone %v", v)
		}
		if v, _ := c.SimpleObject(1).Get(lwm2m.ResourcePath(1, 0, 3)); v.Int() != 120 {
			t.Errorf("default pmax %v", v)
		}
	})
}

// BenchmarkRead measures one server-to-device Read of the Device instance
// (/3/0) in SenML CBOR over a real UDP socket on loopback: the device-side
// cost of the DM path (routing, object read, encoding) plus the round trip.
func BenchmarkRead(b *testing.B) {
	for _, secure := range []bool{false, true} {
		name := "coap"
		if secure {
			name = "coaps"
		}
		b.Run(name, func(b *testing.B) {
			s := newTestServer(b, secure)
			c, err := New(Config{Endpoint: "bench", ServerURI: s.uri, PSKIdentity: "dev-id", PSKKey: testPSKs["dev-id"],
				Logger: testLogger(b), RequestTimeout: 3 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			defer c.Stop()
			for s.reg("bench") == nil {
				time.Sleep(time.Millisecond)
			}
			d := &device{t: b, conn: s.reg("bench").conn}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if r := d.do(codes.GET, "/3/0", -1, nil); r.code != codes.Content {
					b.Fatalf("read: %v", r.code)
				}
			}
		})
	}
}
