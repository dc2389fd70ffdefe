package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/postgres/pgtest"
	"github.com/fotastack/fota/server/store/storetest"
)

// testDSN returns the DSN of a fresh schema of the test database named by
// FOTA_TEST_POSTGRES, dropped when the test ends: tests and runs side by
// side do not see each other's rows.
func testDSN(t *testing.T) string {
	t.Helper()
	return pgtest.DSN(t)
}

func openTest(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPostgresConformance(t *testing.T) {
	pgtest.Base(t)
	dsns := map[store.Store]string{}
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) store.Store {
			dsn := testDSN(t)
			s := openTest(t, dsn)
			dsns[s] = dsn
			return s
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			dsn := dsns[s]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openTest(t, dsn)
			dsns[s2] = dsn
			return s2
		},
	})
}

// A database migrated by a newer binary is refused, naming both versions,
// and an Open of the current schema twice (a restart) applies nothing again.
func TestPostgresMigrationNewerRefused(t *testing.T) {
	dsn := testDSN(t)
	s := openTest(t, dsn)
	s.Close()
	s = openTest(t, dsn) // the second start finds the schema current
	var n int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_version").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion() {
		t.Fatalf("schema_version has %d rows after two starts, want %d", n, SchemaVersion())
	}
	newer := SchemaVersion() + 1
	if _, err := s.pool.Exec(context.Background(), "INSERT INTO schema_version (version, name) VALUES ($1, 'from the future')", newer); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), dsn)
	if err == nil {
		t.Fatal("a database of a newer schema was opened")
	}
	for _, want := range []string{"version " + strconv.Itoa(newer), "version " + strconv.Itoa(SchemaVersion())} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
}

// Nodes starting at once on an empty database take turns at the migration:
// all open, and each migration is applied once.
func TestPostgresConcurrentMigration(t *testing.T) {
	dsn := testDSN(t)
	const nodes = 4
	errs := make(chan error, nodes)
	stores := make(chan *Store, nodes)
	for range nodes {
		go func() {
			s, err := Open(context.Background(), dsn)
			if err == nil {
				stores <- s
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(stores)
	var n int
	for s := range stores {
		if n == 0 {
			if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_version").Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
	}
	if n != SchemaVersion() {
		t.Fatalf("schema_version has %d rows, want %d", n, SchemaVersion())
	}
}

// A password in the DSN appears in no error of Open.
func TestPostgresPasswordNotInErrors(t *testing.T) {
	for _, dsn := range []string{
		"postgres://fota:s3cret-pw@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2",
		"postgres://fota:s3cret-pw@127.0.0.1:notaport/postgres",
	} {
		_, err := Open(context.Background(), dsn)
		if err == nil {
			t.Fatalf("open %q: no error", dsn)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

// ReadAt fetches only the chunks its range touches: with the first chunk
// gone, a range in the second still reads, and one in the first fails.
func TestPostgresBlobReadsOnlyTouchedChunks(t *testing.T) {
	s := openTest(t, testDSN(t))
	defer s.Close()
	data := make([]byte, 3*chunkSize)
	rand.Read(data)
	sum, _, err := s.PutBlob(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := s.OpenBlob(sum)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(context.Background(), "DELETE FROM fw_chunks WHERE blob_id = $1 AND idx = 0", bl.(*blob).id); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1024)
	if k, err := bl.ReadAt(p, chunkSize+100); err != nil || k != len(p) || !bytes.Equal(p, data[chunkSize+100:chunkSize+1124]) {
		t.Fatalf("range in the second chunk: %d, %v", k, err)
	}
	if _, err := bl.ReadAt(p, 100); err == nil {
		t.Fatal("a range in the deleted first chunk read without error")
	}
}

// Two nodes (two Stores on one database) adding images of one device type
// at once never give two the same SeqNo: the lock is in the database.
func TestPostgresSeqNoAcrossNodes(t *testing.T) {
	dsn := testDSN(t)
	a, b := openTest(t, dsn), openTest(t, dsn)
	defer a.Close()
	defer b.Close()
	sum, _, err := a.PutBlob(bytes.NewReader([]byte("image")), 100)
	if err != nil {
		t.Fatal(err)
	}
	const each = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for i, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				_, err := s.AddImage(store.Image{ID: fmt.Sprintf("n%d-%d", i, j), DeviceType: "meter", SHA256: sum})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := a.Images()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for _, img := range imgs {
		if seen[img.SeqNo] {
			t.Fatalf("two images with SeqNo %d", img.SeqNo)
		}
		seen[img.SeqNo] = true
	}
	if len(imgs) != 2*each || !seen[2*each] {
		t.Fatalf("%d images, SeqNos %v: want 1..%d", len(imgs), seen, 2*each)
	}
}

// Chunks of an upload a crash cut short are invisible, and removed by a
// start a day later; a recent upload's are kept (it may be running on
// another node).
func TestPostgresUnfinishedUploadRemoved(t *testing.T) {
	dsn := testDSN(t)
	s := openTest(t, dsn)
	ctx := context.Background()
	for _, q := range []string{
		"INSERT INTO fw_uploads (blob_id, started) VALUES (1001, now() - interval '2 days'), (1002, now())",
		"INSERT INTO fw_chunks (blob_id, idx, bytes) VALUES (1001, 0, 'old'), (1002, 0, 'new')",
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openTest(t, dsn)
	defer s.Close()
	rows, _ := s.pool.Query(ctx, "SELECT blob_id FROM fw_chunks ORDER BY blob_id")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != 1002 {
		t.Fatalf("chunks left after restart: blob ids %v, want [1002]", ids)
	}
}
