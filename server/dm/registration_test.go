package dm

import (
	"errors"
	"strings"
	"testing"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/store"
)

func TestParseRegistration(t *testing.T) {
	cases := []struct {
		name    string
		q       []string
		payload string
		want    RegisterParams
		err     bool
	}{
		{"defaults", []string{"ep=a"}, "</1/0>", RegisterParams{Endpoint: "a", Lifetime: 86400, Version: "1.0", Binding: "U", Links: "</1/0>"}, false},
		{"1.1 queue", []string{"ep=b", "lt=60", "lwm2m=1.1", "b=U", "Q"}, "</1/0>,</3/0>", RegisterParams{Endpoint: "b", Lifetime: 60, Version: "1.1", Binding: "U", Queue: true, Links: "</1/0>,</3/0>"}, false},
		{"1.0 UQ binding", []string{"ep=c", "b=UQ", "sms=+123"}, "", RegisterParams{Endpoint: "c", Lifetime: 86400, Version: "1.0", Binding: "UQ", Queue: true, SMS: "+123"}, false},
		{"1.2 with attributes", []string{"ep=d", "lwm2m=1.2"}, `</>;rt="oma.lwm2m";ct="112 11544",</3>;ver=1.1`, RegisterParams{Endpoint: "d", Lifetime: 86400, Version: "1.2", Binding: "U", Links: `</>;rt="oma.lwm2m";ct="112 11544",</3>;ver=1.1`}, false},
		{"unknown parameter ignored", []string{"ep=e", "zz=1"}, "", RegisterParams{Endpoint: "e", Lifetime: 86400, Version: "1.0", Binding: "U"}, false},
		{"missing ep", []string{"lt=5"}, "", RegisterParams{}, true},
		{"empty ep", []string{"ep="}, "", RegisterParams{}, true},
		{"control char in ep", []string{"ep=a\x00b"}, "", RegisterParams{}, true},
		{"long ep", []string{"ep=" + strings.Repeat("x", 256)}, "", RegisterParams{}, true},
		{"negative lt", []string{"ep=a", "lt=-1"}, "", RegisterParams{}, true},
		{"huge lt", []string{"ep=a", "lt=99999999999"}, "", RegisterParams{}, true},
		{"bad binding", []string{"ep=a", "b=X"}, "", RegisterParams{}, true},
		{"bad link", []string{"ep=a"}, "</1/0>,3/0", RegisterParams{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRegistration(c.q, []byte(c.payload))
			if c.err {
				if !errors.Is(err, ErrBadRegistration) {
					t.Fatalf("err = %v, want ErrBadRegistration", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// LwM2M Transport 6.4.1: the ct attribute of </> lists the formats the
// client supports; the server uses the best of them.
func TestBestFormat(t *testing.T) {
	cases := []struct {
		version, links string
		want           lwm2m.ContentFormat
	}{
		{"1.0", "</1/0>", lwm2m.FormatTLV},
		{"1.1", `</>;ct="110 11542"`, lwm2m.FormatTLV},
		{"1.1", `</>;ct=110`, lwm2m.FormatSenMLJSON},
		{"1.1", `</>;ct=11542,</3/0>`, lwm2m.FormatTLV},
		{"1.2", "</3/0>", lwm2m.FormatSenMLCBOR},
		{"1.2", `</>;ct="11544 110"`, lwm2m.FormatLwM2MCBOR},
	}
	for _, c := range cases {
		d := newDevice(storeReg(c.version, c.links))
		if got := d.BestFormat(); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.version, c.links, got, c.want)
		}
	}
}

func FuzzParseRegistration(f *testing.F) {
	f.Add("ep=dev&lt=300&lwm2m=1.1&b=U", "</1/0>,</3/0>,</5/0>")
	f.Add("ep=dev&Q&b=UQ&sms=+1", `</>;rt="oma.lwm2m";ct="110 112",</3>;ver=1.1,</3/0>`)
	f.Add("lt=x", "<")
	f.Fuzz(func(t *testing.T, query, payload string) {
		p, err := ParseRegistration(strings.Split(query, "&"), []byte(payload))
		if err != nil {
			if !errors.Is(err, ErrBadRegistration) {
				t.Fatalf("error not marked: %v", err)
			}
			return
		}
		if p.Endpoint == "" || p.Lifetime == 0 || len(p.Links) > maxLinksLen {
			t.Fatalf("accepted invalid registration %+v", p)
		}
		_, _ = ParseUpdate(strings.Split(query, "&"), []byte(payload))
		d := newDevice(store.Registration{Links: p.Links, Version: p.Version})
		_ = d.BestFormat()
	})
}

func storeReg(version, links string) store.Registration {
	return store.Registration{ID: "x", Endpoint: "x", Version: version, Links: links}
}
