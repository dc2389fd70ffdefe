// Package storetest is the conformance suite of the store interfaces: every
// backend (server/store/bolt today, PostgreSQL next) runs Run from its own
// tests, so the rules written in package store's doc comments hold for each
// of them alike: not-found and exists errors, atomic multi-record writes,
// what survives a restart, blobs streamed and read by range, and many
// writers at once.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/server/store"
)

// Backend opens the stores the suite runs against.
type Backend struct {
	// New returns an empty store. The suite closes it.
	New func(t *testing.T) store.Store
	// Reopen closes s and opens the same data again, as a restarted server
	// would.
	Reopen func(t *testing.T, s store.Store) store.Store
}

// Run runs every conformance test against b.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"Registrations", testRegistrations},
		{"RegistrationPages", testRegistrationPages},
		{"Credentials", testCredentials},
		{"Observations", testObservations},
		{"Settings", testSettings},
		{"Bootstrap", testBootstrap},
		{"Blobs", testBlobs},
		{"BlobLimitAndReadError", testBlobFailures},
		{"Images", testImages},
		{"DeleteImage", testDeleteImage},
		{"Packages", testPackages},
		{"Profiles", testProfiles},
		{"Apps", testApps},
		{"ConcurrentApps", testConcurrentApps},
		{"Campaigns", testCampaigns},
		{"History", testHistory},
		{"Audit", testAudit},
		{"Domains", testDomains},
		{"Ownership", testOwnership},
		{"ConcurrentWriters", testConcurrentWriters},
		{"SurvivesReopen", testReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func open(t *testing.T, b Backend) store.Store {
	t.Helper()
	s := b.New(t)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want one that wraps %v", what, err, want)
	}
}

// now is a time as it comes back from any backend (second precision, UTC).
var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func testRegistrations(t *testing.T, b Backend) {
	s := open(t, b)
	r := store.Registration{ID: "r1", Endpoint: "ep1", Lifetime: 60, Version: "1.1", Binding: "U", Links: "</1/0>", Created: now, Updated: now}
	must(t, s.PutRegistration(r))
	r.Lifetime = 120
	must(t, s.PutRegistration(r)) // replaces
	must(t, s.PutRegistration(store.Registration{ID: "r2", Endpoint: "ep2", Created: now, Updated: now}))
	regs, err := s.Registrations()
	must(t, err)
	sort.Slice(regs, func(i, j int) bool { return regs[i].ID < regs[j].ID })
	if len(regs) != 2 || regs[0].Lifetime != 120 || regs[0].Endpoint != "ep1" || !regs[0].Updated.Equal(now) {
		t.Fatalf("registrations %+v", regs)
	}
	if regs[0].Expires() != now.Add(2*time.Minute) {
		t.Fatalf("expires %v", regs[0].Expires())
	}
	// Deleting a registration deletes its observations, not others'.
	must(t, s.PutObservation(store.Observation{Token: []byte{1}, Endpoint: "ep1", RegID: "r1", Paths: []string{"/3/0/9"}}))
	must(t, s.PutObservation(store.Observation{Token: []byte{2}, Endpoint: "ep2", RegID: "r2", Paths: []string{"/3/0/9"}}))
	must(t, s.DeleteRegistration("r1"))
	obs, err := s.Observations()
	must(t, err)
	if len(obs) != 1 || obs[0].RegID != "r2" {
		t.Fatalf("observations after deleting r1: %+v", obs)
	}
	regs, err = s.Registrations()
	must(t, err)
	if len(regs) != 1 || regs[0].ID != "r2" {
		t.Fatalf("registrations after delete %+v", regs)
	}
	if err := s.PutRegistration(store.Registration{Endpoint: "x"}); err == nil {
		t.Fatal("a registration without ID was stored")
	}
}

// pageAll walks every page of q and returns the endpoints in order.
func pageAll(t *testing.T, s store.Store, q store.RegistrationQuery) []string {
	t.Helper()
	var eps []string
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		regs, err := s.RegistrationPage(q)
		must(t, err)
		if len(regs) > q.Limit {
			t.Fatalf("page of %d for limit %d", len(regs), q.Limit)
		}
		for _, r := range regs {
			eps = append(eps, r.Endpoint)
		}
		if len(regs) < q.Limit {
			return eps
		}
		q.After = regs[len(regs)-1].Endpoint
	}
}

// Pages of registrations come in the byte order of endpoints, whatever
// the backend's collation, from a keyset cursor, filtered by search,
// security mode and queue mode; a re-registered endpoint moves its entry,
// a deleted one leaves.
func testRegistrationPages(t *testing.T, b Backend) {
	s := open(t, b)
	var want []string
	secs := []string{"none", "psk", "x509"}
	for i := 0; i < 57; i++ {
		// Mixed case and punctuation: "B" < "_" < "a" in bytes, not in
		// most collations.
		ep := fmt.Sprintf("%s-%03d", []string{"Meter", "meter", "urn:imei:35", "_gw"}[i%4], i)
		want = append(want, ep)
		must(t, s.PutRegistration(store.Registration{ID: fmt.Sprintf("id%03d", i), Endpoint: ep, Security: secs[i%3], Queue: i%2 == 0, Created: now, Updated: now}))
	}
	sort.Strings(want)
	for _, limit := range []int{1, 7, 57, 1000} {
		got := pageAll(t, s, store.RegistrationQuery{Limit: limit})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("limit %d: pages %v, want %v", limit, got, want)
		}
	}
	filter := func(keep func(i int, ep string) bool) []string {
		var out []string
		for i := 0; i < 57; i++ {
			ep := fmt.Sprintf("%s-%03d", []string{"Meter", "meter", "urn:imei:35", "_gw"}[i%4], i)
			if keep(i, ep) {
				out = append(out, ep)
			}
		}
		sort.Strings(out)
		return out
	}
	yes := true
	for _, tc := range []struct {
		q    store.RegistrationQuery
		want []string
	}{
		{store.RegistrationQuery{Search: "METER"}, filter(func(i int, _ string) bool { return i%4 < 2 })},
		{store.RegistrationQuery{Search: "imei:35-01"}, filter(func(i int, _ string) bool { return i%4 == 2 && i/10 == 1 })},
		{store.RegistrationQuery{Security: "psk"}, filter(func(i int, _ string) bool { return i%3 == 1 })},
		{store.RegistrationQuery{Queue: &yes, Security: "x509", Search: "gw"}, filter(func(i int, _ string) bool { return i%2 == 0 && i%3 == 2 && i%4 == 3 })},
		{store.RegistrationQuery{Search: "nothing-like-it"}, nil},
		{store.RegistrationQuery{Search: "%"}, nil}, // no wildcard in the search
	} {
		for _, limit := range []int{2, 1000} {
			tc.q.Limit = limit
			if got := pageAll(t, s, tc.q); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("%+v: %v, want %v", tc.q, got, tc.want)
			}
		}
	}
	// The cursor need not be a stored endpoint.
	regs, err := s.RegistrationPage(store.RegistrationQuery{After: "meter-0", Limit: 2})
	must(t, err)
	if len(regs) != 2 || regs[0].Endpoint != "meter-001" || regs[0].ID != "id001" || regs[0].Security != "psk" || !regs[0].Updated.Equal(now) {
		t.Fatalf("page after meter-0: %+v", regs)
	}
	// A new registration of an endpoint replaces the old one in the
	// pages once the old one is deleted; a deleted one is gone.
	must(t, s.PutRegistration(store.Registration{ID: "new001", Endpoint: "meter-001", Security: "x509", Created: now, Updated: now}))
	must(t, s.DeleteRegistration("id001"))
	must(t, s.DeleteRegistration("id005"))
	regs, err = s.RegistrationPage(store.RegistrationQuery{After: "meter-0", Limit: 2})
	must(t, err)
	if len(regs) != 2 || regs[0].ID != "new001" || regs[1].Endpoint != "meter-009" {
		t.Fatalf("page after re-registration and delete: %+v", regs)
	}
	if got := pageAll(t, s, store.RegistrationQuery{Limit: 1000}); len(got) != 56 {
		t.Fatalf("%d endpoints after deleting one, want 56", len(got))
	}
	for _, limit := range []int{0, -1, store.MaxPage + 1} {
		if _, err := s.RegistrationPage(store.RegistrationQuery{Limit: limit}); err == nil {
			t.Fatalf("limit %d accepted", limit)
		}
	}
}

// A PSK identity belongs to one endpoint; changing an endpoint's identity
// frees the old one.
func testCredentials(t *testing.T, b Backend) {
	s := open(t, b)
	must(t, s.PutCredential(store.Credential{Endpoint: "a", Mode: "psk", Identity: "shared", Key: []byte{1}}))
	err := s.PutCredential(store.Credential{Endpoint: "b", Mode: "psk", Identity: "shared", Key: []byte{2}})
	wantErr(t, "second endpoint takes the same PSK identity", err, store.ErrExists)
	if _, err := s.Credential("b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused credential was stored: %v", err)
	}
	must(t, s.PutCredential(store.Credential{Endpoint: "a", Mode: "psk", Identity: "new", Key: []byte{1}}))
	_, err = s.CredentialByIdentity("shared")
	wantErr(t, "old identity", err, store.ErrNotFound)
	c, err := s.CredentialByIdentity("new")
	must(t, err)
	if c.Endpoint != "a" || !bytes.Equal(c.Key, []byte{1}) || c.Mode != "psk" {
		t.Fatalf("credential by identity %+v", c)
	}
	must(t, s.PutCredential(store.Credential{Endpoint: "b", Mode: "psk", Identity: "shared", Key: []byte{2}}))
	must(t, s.PutCredential(store.Credential{Endpoint: "x", Mode: "x509"}))
	all, err := s.Credentials()
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("credentials %+v", all)
	}
	must(t, s.DeleteCredential("b"))
	_, err = s.CredentialByIdentity("shared")
	wantErr(t, "deleted identity", err, store.ErrNotFound)
	wantErr(t, "delete twice", s.DeleteCredential("b"), store.ErrNotFound)
	_, err = s.Credential("zz")
	wantErr(t, "unknown endpoint", err, store.ErrNotFound)
	// DM and bootstrap credentials are apart: one's identity is not the other's.
	_, err = s.BootstrapCredentialByIdentity("new")
	wantErr(t, "DM identity seen by the bootstrap store", err, store.ErrNotFound)
}

func testObservations(t *testing.T, b Backend) {
	s := open(t, b)
	o := store.Observation{Token: []byte{9, 9}, Endpoint: "ep", RegID: "r", Paths: []string{"/3/0/9", "/3/0/10"}, Composite: true, Format: 112, Created: now}
	must(t, s.PutObservation(o))
	o.Format = 11543
	must(t, s.PutObservation(o))
	must(t, s.PutObservation(store.Observation{Token: []byte{7}, Endpoint: "ep", RegID: "r", Paths: []string{"/5/0/3"}}))
	obs, err := s.Observations()
	must(t, err)
	sort.Slice(obs, func(i, j int) bool { return bytes.Compare(obs[i].Token, obs[j].Token) < 0 })
	if len(obs) != 2 || obs[1].Format != 11543 || !obs[1].Composite || len(obs[1].Paths) != 2 || !obs[1].Created.Equal(now) {
		t.Fatalf("observations %+v", obs)
	}
	must(t, s.DeleteObservation([]byte{7}))
	must(t, s.DeleteObservation([]byte{7})) // not stored: not an error
	obs, err = s.Observations()
	must(t, err)
	if len(obs) != 1 {
		t.Fatalf("observations after delete %+v", obs)
	}
	if err := s.PutObservation(store.Observation{Endpoint: "ep"}); err == nil {
		t.Fatal("an observation without token was stored")
	}
}

func testSettings(t *testing.T, b Backend) {
	s := open(t, b)
	_, err := s.Setting("k")
	wantErr(t, "unknown setting", err, store.ErrNotFound)
	must(t, s.PutSetting("k", []byte("v1")))
	must(t, s.PutSetting("k", []byte{0, 1, 2, 255}))
	v, err := s.Setting("k")
	must(t, err)
	if !bytes.Equal(v, []byte{0, 1, 2, 255}) {
		t.Fatalf("setting %x", v)
	}
}

func testBootstrap(t *testing.T, b Backend) {
	s := open(t, b)
	min := uint32(5)
	cfg := &store.BootstrapConfig{
		ToDelete: []string{"/0", "/1"},
		Security: map[uint16]*store.BootstrapSecurity{0: {URI: "coaps://127.0.0.1:5684", SecurityMode: store.ModePSK,
			PublicKeyOrID: store.HexBytes("id"), SecretKey: store.HexBytes{1, 2}, ServerID: 1}},
		Servers: map[uint16]*store.BootstrapServerAccount{0: {ShortID: 1, Lifetime: 300, DefaultMinPeriod: &min, Binding: "U"}},
		ACLs:    map[uint16]*store.BootstrapACL{0: {ObjectID: 5, ObjectInstanceID: 0, ACLs: map[uint16]uint16{1: 31}, AccessControlOwner: 1}},
	}
	_, err := s.BootstrapConfig("ep")
	wantErr(t, "unknown config", err, store.ErrNotFound)
	must(t, s.PutBootstrapConfig("ep", cfg))
	got, err := s.BootstrapConfig("ep")
	must(t, err)
	if got.Security[0].URI != cfg.Security[0].URI || string(got.Security[0].PublicKeyOrID) != "id" || *got.Servers[0].DefaultMinPeriod != 5 ||
		got.ACLs[0].ACLs[1] != 31 || len(got.ToDelete) != 2 {
		t.Fatalf("config %+v", got)
	}
	must(t, s.PutBootstrapConfig("ep2", &store.BootstrapConfig{}))
	all, err := s.BootstrapConfigs()
	must(t, err)
	if len(all) != 2 || all["ep"] == nil || all["ep2"] == nil {
		t.Fatalf("configs %v", all)
	}
	must(t, s.DeleteBootstrapConfig("ep2"))
	wantErr(t, "delete config twice", s.DeleteBootstrapConfig("ep2"), store.ErrNotFound)

	must(t, s.PutBootstrapCredential(store.Credential{Endpoint: "ep", Mode: "psk", Identity: "bs-id", Key: []byte{3}}))
	err = s.PutBootstrapCredential(store.Credential{Endpoint: "ep2", Mode: "psk", Identity: "bs-id", Key: []byte{4}})
	wantErr(t, "second endpoint takes the same bootstrap identity", err, store.ErrExists)
	c, err := s.BootstrapCredentialByIdentity("bs-id")
	must(t, err)
	if c.Endpoint != "ep" {
		t.Fatalf("bootstrap credential %+v", c)
	}
	_, err = s.CredentialByIdentity("bs-id")
	wantErr(t, "bootstrap identity seen by the DM store", err, store.ErrNotFound)
	c, err = s.BootstrapCredential("ep")
	must(t, err)
	if c.Identity != "bs-id" {
		t.Fatalf("bootstrap credential %+v", c)
	}
	cs, err := s.BootstrapCredentials()
	must(t, err)
	if len(cs) != 1 {
		t.Fatalf("bootstrap credentials %+v", cs)
	}
	must(t, s.DeleteBootstrapCredential("ep"))
	_, err = s.BootstrapCredentialByIdentity("bs-id")
	wantErr(t, "deleted bootstrap identity", err, store.ErrNotFound)
	wantErr(t, "delete bootstrap credential twice", s.DeleteBootstrapCredential("ep"), store.ErrNotFound)
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// readAll reads a blob through ReadAt in pieces of n bytes.
func readAll(t *testing.T, bl store.Blob, n int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, n)
	for off := int64(0); ; {
		k, err := bl.ReadAt(buf, off)
		out = append(out, buf[:k]...)
		off += int64(k)
		if err == io.EOF {
			return out
		}
		must(t, err)
	}
}

// slowReader yields its data a few bytes at a time, as a network upload does.
type slowReader struct {
	data []byte
	step int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.data)
	r.data = r.data[n:]
	return n, nil
}

func testBlobs(t *testing.T, b Backend) {
	s := open(t, b)
	// Sizes around the chunk sizes a backend may use, and none at all.
	for _, size := range []int{0, 1, 1000, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300_001, 1<<20 + 17} {
		data := randomBytes(int64(size), size)
		sum, n, err := s.PutBlob(&slowReader{data: data, step: 7919}, 4<<20)
		must(t, err)
		if n != int64(size) {
			t.Fatalf("size %d: PutBlob says %d", size, n)
		}
		bl, err := s.OpenBlob(sum)
		must(t, err)
		if bl.Size() != int64(size) {
			t.Fatalf("size %d: blob says %d", size, bl.Size())
		}
		for _, piece := range []int{1024, 4093, 1 << 20} {
			if got := readAll(t, bl, piece); !bytes.Equal(got, data) {
				t.Fatalf("size %d read by %d: %d bytes differ from what was put", size, piece, len(got))
			}
		}
		// A range across what may be a chunk boundary, and one past the end.
		if size > 70000 {
			p := make([]byte, 10000)
			k, err := bl.ReadAt(p, 60000)
			must(t, err)
			if k != 10000 || !bytes.Equal(p, data[60000:70000]) {
				t.Fatalf("size %d: range read differs", size)
			}
		}
		if k, err := bl.ReadAt(make([]byte, 10), int64(size)); k != 0 || err != io.EOF {
			t.Fatalf("size %d: read at the end: %d, %v", size, k, err)
		}
		if size >= 10 {
			p := make([]byte, 100)
			k, err := bl.ReadAt(p, int64(size-10))
			if k != 10 || err != io.EOF || !bytes.Equal(p[:10], data[size-10:]) {
				t.Fatalf("size %d: read over the end: %d, %v", size, k, err)
			}
		}
		// The same bytes again: the same sum, readable.
		sum2, _, err := s.PutBlob(bytes.NewReader(data), 4<<20)
		must(t, err)
		if sum2 != sum {
			t.Fatalf("same bytes, sums %s and %s", sum, sum2)
		}
	}
	_, err := s.OpenBlob("00")
	wantErr(t, "unknown blob", err, store.ErrNotFound)
}

// A blob over its limit, or whose reader fails midway, stores nothing: no
// image can name it.
func testBlobFailures(t *testing.T, b Backend) {
	s := open(t, b)
	data := randomBytes(3, 200_000)
	if _, _, err := s.PutBlob(bytes.NewReader(data), 100_000); err == nil {
		t.Fatal("a blob over its limit was stored")
	}
	_, err := s.OpenBlob(sha(data))
	wantErr(t, "blob over its limit", err, store.ErrNotFound)
	_, err = s.OpenBlob(sha(data[:100_000]))
	wantErr(t, "the part of a blob under its limit", err, store.ErrNotFound)
	if _, _, err := s.PutBlob(&failingReader{data: data[:150_000]}, 1<<20); err == nil {
		t.Fatal("a blob whose reader failed was stored")
	}
	_, err = s.OpenBlob(sha(data[:150_000]))
	wantErr(t, "blob whose reader failed", err, store.ErrNotFound)
	_, err = s.AddImage(store.Image{ID: "i", DeviceType: "t", Version: "1", SHA256: sha(data[:150_000]), Size: 150_000})
	wantErr(t, "image of a blob never stored", err, store.ErrNotFound)
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

type failingReader struct{ data []byte }

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errors.New("connection reset")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// putImage stores data as a blob and an image of it.
func putImage(t *testing.T, s store.Store, devType, version string, data []byte) store.Image {
	t.Helper()
	sum, n, err := s.PutBlob(bytes.NewReader(data), 1<<30)
	must(t, err)
	img, err := s.AddImage(store.Image{ID: devType + "-" + version, DeviceType: devType, Version: version, Size: int(n), SHA256: sum, Created: now})
	must(t, err)
	return img
}

func testImages(t *testing.T, b Backend) {
	s := open(t, b)
	a1 := putImage(t, s, "a", "1", []byte("one"))
	a2 := putImage(t, s, "a", "2", []byte("two"))
	b1 := putImage(t, s, "b", "1", []byte("one")) // the same bytes as a1: one blob
	if a1.SeqNo != 1 || a2.SeqNo != 2 || b1.SeqNo != 1 {
		t.Fatalf("sequence numbers %d %d %d, want 1 2 1 (per device type, in order of upload)", a1.SeqNo, a2.SeqNo, b1.SeqNo)
	}
	given, err := s.AddImage(store.Image{ID: "a-9", DeviceType: "a", Version: "9", SHA256: a1.SHA256, Size: 3, SeqNo: 40})
	must(t, err)
	if given.SeqNo != 40 {
		t.Fatalf("a given SeqNo was replaced: %d", given.SeqNo)
	}
	a3 := putImage(t, s, "a", "3", []byte("three"))
	if a3.SeqNo != 41 {
		t.Fatalf("SeqNo after 40: %d", a3.SeqNo)
	}
	_, err = s.AddImage(store.Image{ID: a1.ID, DeviceType: "a", Version: "1", SHA256: a1.SHA256})
	wantErr(t, "the same image twice", err, store.ErrExists)
	got, err := s.Image(a2.ID)
	must(t, err)
	if got.Version != "2" || got.SHA256 != a2.SHA256 || got.Size != 3 || !got.Created.Equal(now) {
		t.Fatalf("image %+v", got)
	}
	_, err = s.Image("nope")
	wantErr(t, "unknown image", err, store.ErrNotFound)
	imgs, err := s.Images()
	must(t, err)
	if len(imgs) != 5 {
		t.Fatalf("%d images, want 5", len(imgs))
	}
}

func testDeleteImage(t *testing.T, b Backend) {
	s := open(t, b)
	v1 := putImage(t, s, "a", "1", []byte("image one"))
	v2 := putImage(t, s, "a", "2", []byte("image two"))
	other := putImage(t, s, "b", "1", []byte("image one")) // shares v1's blob
	pkgSum, _, err := s.PutBlob(bytes.NewReader([]byte("delta 1->2")), 1<<20)
	must(t, err)
	p, err := s.PutPackage(store.Package{ID: "p12", Kind: "delta", DeviceType: "a", FromImage: v1.ID, ToImage: v2.ID, SHA256: pkgSum, Size: 10, Created: now})
	must(t, err)
	q, err := s.PutPackage(store.Package{ID: "p2", Kind: "full", DeviceType: "a", ToImage: v2.ID, SHA256: v2.SHA256, Size: 9, Created: now})
	must(t, err)
	dropped, err := s.DeleteImage(v1.ID)
	must(t, err)
	if len(dropped) != 1 || dropped[0] != p.ID {
		t.Fatalf("dropped packages %v, want [%s]", dropped, p.ID)
	}
	_, err = s.Package(p.ID)
	wantErr(t, "package from a deleted image", err, store.ErrNotFound)
	_, err = s.OpenBlob(pkgSum)
	wantErr(t, "blob of a deleted package", err, store.ErrNotFound)
	if _, err := s.OpenBlob(other.SHA256); err != nil {
		t.Fatalf("a blob another image uses was deleted: %v", err)
	}
	if _, err := s.Package(q.ID); err != nil {
		t.Fatalf("a package not of the deleted image was deleted: %v", err)
	}
	_, err = s.DeleteImage(v1.ID)
	wantErr(t, "delete twice", err, store.ErrNotFound)
	dropped, err = s.DeleteImage(v2.ID)
	must(t, err)
	if len(dropped) != 1 || dropped[0] != q.ID {
		t.Fatalf("dropped packages %v, want [%s]", dropped, q.ID)
	}
	_, err = s.OpenBlob(v2.SHA256)
	wantErr(t, "blob of the last image and package using it", err, store.ErrNotFound)
}

func testPackages(t *testing.T, b Backend) {
	s := open(t, b)
	img := putImage(t, s, "a", "1", []byte("image"))
	_, err := s.PutPackage(store.Package{ID: "p", ToImage: img.ID, SHA256: sha([]byte("never stored"))})
	wantErr(t, "package of a blob never stored", err, store.ErrNotFound)
	first, err := s.PutPackage(store.Package{ID: "p", Kind: "full", ToImage: img.ID, ToVersion: "1", SHA256: img.SHA256, Size: 5, Created: now})
	must(t, err)
	second, err := s.PutPackage(store.Package{ID: "p", Kind: "full", ToImage: img.ID, ToVersion: "1", SHA256: img.SHA256, Size: 5, Created: now.Add(time.Hour)})
	must(t, err)
	if !second.Created.Equal(first.Created) {
		t.Fatalf("a second PutPackage of the same ID replaced the first: %v", second.Created)
	}
	got, err := s.Package("p")
	must(t, err)
	if got.Kind != "full" || got.ToVersion != "1" || got.Size != 5 {
		t.Fatalf("package %+v", got)
	}
	_, err = s.Package("q")
	wantErr(t, "unknown package", err, store.ErrNotFound)
	ps, err := s.Packages()
	must(t, err)
	if len(ps) != 1 {
		t.Fatalf("packages %+v", ps)
	}
}

func testProfiles(t *testing.T, b Backend) {
	s := open(t, b)
	_, err := s.Profile("meter")
	wantErr(t, "unknown profile", err, store.ErrNotFound)
	must(t, s.PutProfile(store.DeviceProfile{DeviceType: "meter", EraseBlock: 4096, RAM: 8192}))
	must(t, s.PutProfile(store.DeviceProfile{DeviceType: "meter", EraseBlock: 8192, RAM: 8192}))
	p, err := s.Profile("meter")
	must(t, err)
	if p.EraseBlock != 8192 || p.RAM != 8192 {
		t.Fatalf("profile %+v", p)
	}
}

func testCampaigns(t *testing.T, b Backend) {
	s := open(t, b)
	c := store.Campaign{ID: "c1", Name: "first", Image: "img", DeviceType: "meter", Version: "2", Method: "pull",
		Targets: store.Selector{Endpoints: []string{"a", "b"}}, Waves: []float64{50, 100}, Concurrency: 2,
		Window: store.Window{Start: "22:00", End: "04:00"}, State: "running", Planned: 2, Joined: 2, Created: now, Updated: now}
	devs := []store.CampaignDevice{{Endpoint: "a", Seq: 0, State: "queued", Updated: now}, {Endpoint: "b", Seq: 1, Wave: 1, State: "queued", Updated: now}}
	err := s.PutCampaignDevice("c1", devs[0])
	wantErr(t, "device of a campaign not stored", err, store.ErrNotFound)
	_, err = s.CampaignDevices("c1")
	wantErr(t, "devices of a campaign not stored", err, store.ErrNotFound)
	must(t, s.PutCampaign(c, devs))
	d := devs[1]
	d.State, d.Progress, d.OfferedAt = "downloading", 40, now
	must(t, s.PutCampaignDevice("c1", d))
	c.State = "paused"
	must(t, s.PutCampaign(c, nil)) // the campaign alone: devices stay
	cs, err := s.Campaigns()
	must(t, err)
	if len(cs) != 1 || cs[0].State != "paused" || cs[0].Window.Start != "22:00" || len(cs[0].Waves) != 2 || cs[0].Targets.Endpoints[1] != "b" {
		t.Fatalf("campaigns %+v", cs)
	}
	got, err := s.CampaignDevices("c1")
	must(t, err)
	sort.Slice(got, func(i, j int) bool { return got[i].Seq < got[j].Seq })
	if len(got) != 2 || got[0].State != "queued" || got[1].State != "downloading" || got[1].Progress != 40 || !got[1].OfferedAt.Equal(now) {
		t.Fatalf("campaign devices %+v", got)
	}
}

// Many goroutines write at once; every write lands, and none is lost to
// another's transaction.
func testConcurrentWriters(t *testing.T, b Backend) {
	s := open(t, b)
	must(t, s.PutCampaign(store.Campaign{ID: "c", State: "running"}, nil))
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*3)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ep := fmt.Sprintf("ep-%d-%d", w, i)
				errs <- s.PutRegistration(store.Registration{ID: "r-" + ep, Endpoint: ep, Created: now, Updated: now})
				errs <- s.PutCampaignDevice("c", store.CampaignDevice{Endpoint: ep, Seq: w*each + i, State: "queued"})
				_, err := s.AddImage(store.Image{ID: ep, DeviceType: "t", Version: ep, SHA256: mustBlob(s, ep)})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	regs, err := s.Registrations()
	must(t, err)
	devs, err := s.CampaignDevices("c")
	must(t, err)
	imgs, err := s.Images()
	must(t, err)
	if len(regs) != writers*each || len(devs) != writers*each || len(imgs) != writers*each {
		t.Fatalf("%d registrations, %d campaign devices, %d images; want %d each", len(regs), len(devs), len(imgs), writers*each)
	}
	// Images added at once still get distinct sequence numbers.
	seen := map[uint32]bool{}
	for _, img := range imgs {
		if seen[img.SeqNo] {
			t.Fatalf("two images with SeqNo %d", img.SeqNo)
		}
		seen[img.SeqNo] = true
	}
}

func mustBlob(s store.Store, text string) string {
	sum, _, err := s.PutBlob(bytes.NewReader([]byte(text)), 1<<20)
	if err != nil {
		return "put blob: " + err.Error()
	}
	return sum
}

// Everything written is there after a restart.
func testReopen(t *testing.T, b Backend) {
	s := b.New(t)
	must(t, s.PutRegistration(store.Registration{ID: "r1", Endpoint: "ep1", Lifetime: 60, Created: now, Updated: now}))
	must(t, s.PutCredential(store.Credential{Endpoint: "ep1", Mode: "psk", Identity: "id1", Key: []byte{1, 2}}))
	must(t, s.PutObservation(store.Observation{Token: []byte{9}, Endpoint: "ep1", RegID: "r1", Paths: []string{"/3/0/9"}}))
	must(t, s.PutSetting("k", []byte("v")))
	must(t, s.PutBootstrapConfig("ep1", &store.BootstrapConfig{ToDelete: []string{"/0"}}))
	must(t, s.PutBootstrapCredential(store.Credential{Endpoint: "ep1", Mode: "psk", Identity: "bs1", Key: []byte{3}}))
	data := randomBytes(9, 200_000)
	img := putImage(t, s, "a", "1", data)
	must(t, s.PutProfile(store.DeviceProfile{DeviceType: "a", EraseBlock: 4096}))
	_, err := s.PutPackage(store.Package{ID: "p", Kind: "full", ToImage: img.ID, SHA256: img.SHA256, Size: img.Size})
	must(t, err)
	must(t, s.PutCampaign(store.Campaign{ID: "c", State: "running"}, []store.CampaignDevice{{Endpoint: "ep1", State: "updating"}}))

	s = b.Reopen(t, s)
	defer s.Close()
	if regs, err := s.Registrations(); err != nil || len(regs) != 1 || !regs[0].Updated.Equal(now) {
		t.Fatalf("registrations after reopen %+v %v", regs, err)
	}
	if c, err := s.CredentialByIdentity("id1"); err != nil || c.Endpoint != "ep1" {
		t.Fatalf("credential after reopen %+v %v", c, err)
	}
	if obs, err := s.Observations(); err != nil || len(obs) != 1 {
		t.Fatalf("observations after reopen %+v %v", obs, err)
	}
	if v, err := s.Setting("k"); err != nil || string(v) != "v" {
		t.Fatalf("setting after reopen %q %v", v, err)
	}
	if c, err := s.BootstrapConfig("ep1"); err != nil || len(c.ToDelete) != 1 {
		t.Fatalf("bootstrap config after reopen %+v %v", c, err)
	}
	if c, err := s.BootstrapCredentialByIdentity("bs1"); err != nil || c.Endpoint != "ep1" {
		t.Fatalf("bootstrap credential after reopen %+v %v", c, err)
	}
	bl, err := s.OpenBlob(img.SHA256)
	must(t, err)
	if !bytes.Equal(readAll(t, bl, 1024), data) {
		t.Fatal("image bytes differ after reopen")
	}
	if p, err := s.Profile("a"); err != nil || p.EraseBlock != 4096 {
		t.Fatalf("profile after reopen %+v %v", p, err)
	}
	if _, err := s.Package("p"); err != nil {
		t.Fatalf("package after reopen: %v", err)
	}
	if devs, err := s.CampaignDevices("c"); err != nil || len(devs) != 1 || devs[0].State != "updating" {
		t.Fatalf("campaign devices after reopen %+v %v", devs, err)
	}
}

// A device's history keeps its newest entries, in order, apart from other
// devices'; it outlives nothing but its bound.
func testHistory(t *testing.T, b Backend) {
	s := open(t, b)
	h, err := s.History("nobody", 10)
	if err != nil || len(h) != 0 {
		t.Fatalf("history of an unknown endpoint: %v %v", h, err)
	}
	for i := range 12 {
		e := store.HistoryEntry{Time: now.Add(time.Duration(i) * time.Second), Endpoint: "a", Kind: "campaign", Detail: fmt.Sprint(i), Result: i}
		o := store.HistoryEntry{Time: now, Endpoint: "b", Kind: "registered", Detail: fmt.Sprint(i)}
		must(t, s.AddHistory([]store.HistoryEntry{e, o}, 5))
	}
	h, err = s.History("a", 100)
	must(t, err)
	if len(h) != 5 || h[0].Detail != "7" || h[4].Detail != "11" || h[4].Result != 11 || !h[4].Time.Equal(now.Add(11*time.Second)) {
		t.Fatalf("history of a (keep 5): %+v", h)
	}
	h, err = s.History("a", 2)
	must(t, err)
	if len(h) != 2 || h[0].Detail != "10" || h[1].Detail != "11" {
		t.Fatalf("newest 2 of a: %+v", h)
	}
	if h, _ := s.History("b", 100); len(h) != 5 || h[0].Kind != "registered" {
		t.Fatalf("history of b: %+v", h)
	}
	if err := s.AddHistory([]store.HistoryEntry{{Kind: "x"}}, 5); err == nil {
		t.Fatal("an entry without endpoint was stored")
	}
}

func testAudit(t *testing.T, b Backend) {
	s := open(t, b)
	for i := range 7 {
		must(t, s.AddAudit(store.AuditEntry{Time: now, Actor: "api-token", Action: fmt.Sprintf("POST /api/x/%d", i), Status: 200 + i}, 4))
	}
	a, err := s.Audit(10)
	must(t, err)
	if len(a) != 4 || a[0].Action != "POST /api/x/3" || a[3].Status != 206 || a[3].Actor != "api-token" {
		t.Fatalf("audit (keep 4): %+v", a)
	}
}
