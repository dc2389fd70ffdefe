package server_test

import (
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/server/servertest"
)

// Content format negotiation (LwM2M Core 6.2.1, Transport 6.4.1): a
// multi-value read asks for the best format the device announced, or the
// one its LwM2M version mandates; a single-resource read lets the device
// choose.
func TestReadAsksForBestFormat(t *testing.T) {
	srv := servertest.Start(t)
	cases := []struct {
		ep, version, links string
		want               int
	}{
		{"v10", "1.0", "</1/0>,</3/0>", 11542},                            // TLV
		{"v11-senml", "1.1", `</>;ct="110 112",</3/0>`, 112},              // SenML CBOR
		{"v11-json", "1.1", `</>;ct=110,</3/0>`, 110},                     // SenML JSON
		{"v12", "1.2", `</>;rt="oma.lwm2m";ct="112 11544",</3/0>`, 11544}, // LwM2M CBOR
		{"v12-none", "1.2", `</3/0>`, 112},                                // SenML CBOR
	}
	for _, c := range cases {
		d := newTestDevice(t, c.ep).dialPlain(srv.CoAPAddr())
		r, err := d.post("/rd", []string{"ep=" + c.ep, "lwm2m=" + c.version}, []byte(c.links))
		if err != nil || r.Code != codes.Created {
			t.Fatalf("%s: register %v %v", c.ep, r, err)
		}
		srv.API("GET", "/api/clients/"+c.ep+"/3/0", nil, nil)
		srv.API("GET", "/api/clients/"+c.ep+"/3/0/0", nil, nil)
		d.mu.Lock()
		acc := append([]int(nil), d.accepts...)
		d.mu.Unlock()
		if len(acc) != 2 || acc[0] != c.want || acc[1] != -1 {
			t.Errorf("%s: Accept options %v, want [%d -1]", c.ep, acc, c.want)
		}
	}
}

// LwM2M Core 6.2.1: a client that announces an alternate path gets every
// request below it.
func TestAlternatePath(t *testing.T) {
	srv := servertest.Start(t)
	d := newTestDevice(t, "alt").dialPlain(srv.CoAPAddr())
	d.root = "/lwm2m"
	r, err := d.post("/rd", []string{"ep=alt", "lwm2m=1.1"}, []byte(`</lwm2m>;rt="oma.lwm2m";ct=110,</lwm2m/3/0>`))
	if err != nil || r.Code != codes.Created {
		t.Fatalf("register %v %v", r, err)
	}
	var got map[string]any
	srv.API("GET", "/api/clients/alt/3/0/0", nil, &got)
	if got["content"] != "fotastack" {
		t.Fatalf("read under alternate path: %v", got)
	}
}
