package client

import (
	"strings"
	"testing"

	"github.com/fotastack/fota/lwm2m"
)

// The parsers of request parts the client owns get arbitrary input: an
// error or a result, never a panic.

func FuzzDecodePathList(f *testing.F) {
	f.Add(uint16(lwm2m.FormatSenMLJSON), []byte(`[{"n":"/3/0/0"},{"bn":"/5/0/","n":"3"}]`))
	f.Add(uint16(lwm2m.FormatSenMLJSON), []byte(`[{"bn":"/1/0"}]`))
	f.Add(uint16(lwm2m.FormatSenMLCBOR), []byte("\x82\xa1\x00\x66/3/0/0\xa2\x21\x65/5/0/\x00\x613"))
	f.Fuzz(func(t *testing.T, cf uint16, data []byte) {
		paths, err := DecodePathList(lwm2m.ContentFormat(cf), data)
		if err == nil && (len(paths) == 0 || len(paths) > maxCompositePaths) {
			t.Fatalf("%d paths without error", len(paths))
		}
	})
}

func FuzzParseAttributes(f *testing.F) {
	f.Add("pmin=10&pmax=60&gt=1.5&lt=-3&st=0.5")
	f.Add("pmin&st")
	f.Add("epmin=1&epmax=30&edge=1&con=0&hqmax=10")
	f.Add("epmin&epmax&edge&con&hqmax")
	f.Add("edge=2&con=-1&hqmax=99999&epmin=+1")
	f.Fuzz(func(t *testing.T, q string) {
		u, err := parseAttributes(strings.Split(q, "&"))
		if err != nil {
			return
		}
		if u.set.St != nil && *u.set.St <= 0 {
			t.Fatalf("st %v accepted", *u.set.St)
		}
		for name, v := range map[string]*int64{"pmin": u.set.Pmin, "pmax": u.set.Pmax, "epmin": u.set.Epmin, "epmax": u.set.Epmax} {
			if v != nil && (*v < 0 || *v > maxPeriod) {
				t.Fatalf("%s=%d accepted", name, *v)
			}
		}
		for name, v := range map[string]*int64{"edge": u.set.Edge, "con": u.set.Con} {
			if v != nil && *v != 0 && *v != 1 {
				t.Fatalf("%s=%d accepted", name, *v)
			}
		}
		if u.set.Hqmax != nil && (*u.set.Hqmax < 0 || *u.set.Hqmax > MaxHistoricalQueue) {
			t.Fatalf("hqmax=%d accepted", *u.set.Hqmax)
		}
		_ = u.set.link()
	})
}

func FuzzCheckExecuteArgs(f *testing.F) {
	for _, s := range []string{"", "0", "0,1", "0='now',1='x y'", "5=''"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkExecuteArgs(b) == nil && len(b) > 0 && (b[0] < '0' || b[0] > '9') {
			t.Fatalf("%q accepted", b)
		}
	})
}

func TestCheckExecuteArgs(t *testing.T) {
	for s, ok := range map[string]bool{
		"": true, "0": true, "0,1": true, "0='now',1='x, y'": true, "5=''": true,
		"a": false, "0,": false, "0=": false, "0='x": false, "0=x": false, "01": false, ",0": false,
	} {
		if err := checkExecuteArgs([]byte(s)); (err == nil) != ok {
			t.Errorf("checkExecuteArgs(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

func TestParseServerURI(t *testing.T) {
	for s, want := range map[string]string{
		"coap://127.0.0.1":       "127.0.0.1:5683",
		"coaps://example.com":    "example.com:5684",
		"coaps://[::1]:9000":     "[::1]:9000",
		"coap://10.0.0.1:15683/": "10.0.0.1:15683",
	} {
		got, err := parseServerURI(s)
		if err != nil || got.addr != want {
			t.Errorf("parseServerURI(%q) = %+v, %v; want %s", s, got, err, want)
		}
	}
	for _, s := range []string{"", "http://x", "coap://", "coap//x", "%zz"} {
		if _, err := parseServerURI(s); err == nil {
			t.Errorf("parseServerURI(%q) accepted", s)
		}
	}
}
