package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/bolt"
	"github.com/fotastack/fota/server/store/postgres"
	"github.com/fotastack/fota/server/store/postgres/pgtest"
)

// Every kind of record of a bbolt file reads back through the PostgreSQL
// store after `fota store migrate`.
func TestPostgresStoreMigrateFromBolt(t *testing.T) {
	dsn := pgtest.DSN(t)
	file := filepath.Join(t.TempDir(), "fota.db")
	src, err := bolt.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	image := make([]byte, 300_000)
	rand.Read(image)
	sum, n, err := src.PutBlob(bytes.NewReader(image), 1<<20)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(err)
	pkgSum, _, err := src.PutBlob(bytes.NewReader([]byte("delta")), 1<<20)
	check(err)
	check(src.PutRegistration(store.Registration{ID: "r1", Endpoint: "ep1", Lifetime: 60, Created: now, Updated: now}))
	check(src.PutCredential(store.Credential{Endpoint: "ep1", Mode: "psk", Identity: "id1", Key: []byte{1}}))
	check(src.PutObservation(store.Observation{Token: []byte{7}, Endpoint: "ep1", RegID: "r1", Paths: []string{"/3/0/9"}}))
	check(src.PutSetting("api-token", []byte("tok")))
	check(src.PutSetting("firmware-generation/meter", []byte("2")))
	check(src.PutBootstrapConfig("ep1", &store.BootstrapConfig{ToDelete: []string{"/0"}}))
	check(src.PutBootstrapCredential(store.Credential{Endpoint: "ep1", Mode: "psk", Identity: "bs1", Key: []byte{2}}))
	img, err := src.AddImage(store.Image{ID: "meter-1", DeviceType: "meter", Version: "1", SHA256: sum, Size: int(n), Created: now, SeqNo: 7})
	check(err)
	_, err = src.PutPackage(store.Package{ID: "p", Kind: "delta", DeviceType: "meter", ToImage: img.ID, SHA256: pkgSum, Size: 5})
	check(err)
	check(src.PutProfile(store.DeviceProfile{DeviceType: "meter", EraseBlock: 4096, RAM: 8192}))
	check(src.PutCampaign(store.Campaign{ID: "c1", DeviceType: "meter", State: "running"}, []store.CampaignDevice{{Endpoint: "ep2", State: "queued"}}))
	check(src.AddHistory([]store.HistoryEntry{{Endpoint: "ep1", Kind: "registered", Time: now}, {Endpoint: "ep2", Kind: "campaign", Time: now}}, 10))
	check(src.AddAudit(store.AuditEntry{Actor: "a", Action: "POST /api/x", Status: 201, Time: now}, 10))
	check(src.Close())

	t.Setenv("FOTA_STORE", dsn)
	check(runStore([]string{"migrate", "--from", "bolt:" + file}))

	dst, err := postgres.Open(context.Background(), dsn)
	check(err)
	defer dst.Close()
	if r, err := dst.Registrations(); err != nil || len(r) != 1 || !r[0].Updated.Equal(now) {
		t.Fatalf("registrations %+v %v", r, err)
	}
	if c, err := dst.CredentialByIdentity("id1"); err != nil || c.Endpoint != "ep1" {
		t.Fatalf("credential %+v %v", c, err)
	}
	if o, err := dst.Observations(); err != nil || len(o) != 1 {
		t.Fatalf("observations %+v %v", o, err)
	}
	for k, want := range map[string]string{"api-token": "tok", "firmware-generation/meter": "2"} {
		if v, err := dst.Setting(k); err != nil || string(v) != want {
			t.Fatalf("setting %s: %q %v", k, v, err)
		}
	}
	if c, err := dst.BootstrapConfig("ep1"); err != nil || len(c.ToDelete) != 1 {
		t.Fatalf("bootstrap config %+v %v", c, err)
	}
	if c, err := dst.BootstrapCredentialByIdentity("bs1"); err != nil || c.Endpoint != "ep1" {
		t.Fatalf("bootstrap credential %+v %v", c, err)
	}
	if i, err := dst.Image("meter-1"); err != nil || i.SeqNo != 7 || i.SHA256 != sum {
		t.Fatalf("image %+v %v", i, err)
	}
	bl, err := dst.OpenBlob(sum)
	check(err)
	got := make([]byte, bl.Size())
	if k, err := bl.ReadAt(got, 0); err != nil && k != len(got) || !bytes.Equal(got, image) {
		t.Fatalf("image bytes differ after migration (%d bytes read, %v)", k, err)
	}
	if p, err := dst.Package("p"); err != nil || p.SHA256 != pkgSum {
		t.Fatalf("package %+v %v", p, err)
	}
	if p, err := dst.Profile("meter"); err != nil || p.EraseBlock != 4096 {
		t.Fatalf("profile %+v %v", p, err)
	}
	if d, err := dst.CampaignDevices("c1"); err != nil || len(d) != 1 || d[0].Endpoint != "ep2" {
		t.Fatalf("campaign devices %+v %v", d, err)
	}
	for _, ep := range []string{"ep1", "ep2"} {
		if h, err := dst.History(ep, 10); err != nil || len(h) != 1 {
			t.Fatalf("history of %s: %+v %v", ep, h, err)
		}
	}
	if a, err := dst.Audit(10); err != nil || len(a) != 1 || a[0].Status != 201 {
		t.Fatalf("audit %+v %v", a, err)
	}
	// A second run into the now full database is refused, not doubled.
	if err := runStore([]string{"migrate", "--from", "bolt:" + file}); err == nil {
		t.Fatal("a second migration into a non-empty database was not refused")
	}
}
