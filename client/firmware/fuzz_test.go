package firmware

import (
	"testing"
	"time"
)

// FuzzDecodeRecord: a stored progress record of any content is refused
// with an error or accepted within its bounds; never a panic.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"state":1,"result":0,"method":"pull","uri":"coap://127.0.0.1:5683/fw","etag":"ZXRhZy0x","done":4096,"total":12000,"block_size":1024,"severity":1,"last_change":"2026-11-25T16:00:00Z"}`))
	f.Add([]byte(`{"state":2,"result":0,"method":"push","done":12000,"total":12000,"block_size":512,"pkg_name":"sim-1","pkg_version":"2.0","severity":0,"max_defer":60,"last_change":"2026-11-25T16:00:00Z","defer_until":"2026-11-25T16:01:00Z"}`))
	f.Add([]byte(`{"state":0,"result":1,"severity":1,"last_change":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"state":9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if r.State < StateIdle || r.State > StateUpdating || r.Result < 0 || r.Result > ResultDeferred ||
			r.Done < 0 || len(r.ETag) > 8 || len(r.URI) > maxURILen {
			t.Fatalf("accepted an out-of-range record %+v", r)
		}
	})
}

// FuzzParsePackageURI: any string gets a result; an accepted URI is coap
// or coaps with a host and a port.
func FuzzParsePackageURI(f *testing.F) {
	for _, s := range []string{"coap://127.0.0.1:5683/fw", "coaps://[::1]/fw/v2?id=7", "coap://example.com/a%20b",
		"http://example.com/fw", "coap://", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, res := parsePackageURI(s)
		if res != ResultInitial {
			if res != ResultInvalidURI && res != ResultUnsupportedProtocol {
				t.Fatalf("%q: result %v", s, res)
			}
			return
		}
		if (u.Scheme != "coap" && u.Scheme != "coaps") || u.Hostname() == "" || u.Port() == "" {
			t.Fatalf("%q accepted as %#v", s, u)
		}
	})
}

// The record round-trips through save and load.
func TestRecordSurvivesSaveAndLoad(t *testing.T) {
	dir := t.TempDir()
	want := record{State: StateDownloading, Method: methodPull, URI: "coaps://h:1/fw", ETag: []byte("e1"),
		Done: 2048, Total: 9000, BlockSize: 1024, Severity: SeverityMinor, MaxDefer: 30,
		LastChange: time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)}
	if err := saveRecord(dir, want, true); err != nil {
		t.Fatal(err)
	}
	got, err := loadRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.URI != want.URI || string(got.ETag) != "e1" || got.Done != 2048 || got.State != StateDownloading || !got.LastChange.Equal(want.LastChange) {
		t.Errorf("loaded %+v, saved %+v", got, want)
	}
}
