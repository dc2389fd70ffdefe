package bolt

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// fleetSize is the device count the console's list must page through
// without loading it (issue 15).
const fleetSize = 100_000

// putFleet stores n registrations through PutRegistration from 1000
// writers at once (bbolt batches them): endpoint "dev-%06d", every tenth
// in PSK mode, every third in queue mode.
func putFleet(t testing.TB, s *Store, n int) {
	t.Helper()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const writers = 1000 // bbolt's batch size: one fsync per 1000 puts
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += writers {
				sec := "none"
				if i%10 == 0 {
					sec = "psk"
				}
				r := store.Registration{ID: fmt.Sprintf("r%06d", i), Endpoint: fmt.Sprintf("dev-%06d", i), Lifetime: 3600, Version: "1.1",
					Binding: "U", Queue: i%3 == 0, Links: "</1/0>,</3/0>,</5/0>", Address: "10.0.0.1:5684", Transport: "coaps", Security: sec, Created: now, Updated: now}
				if err := s.PutRegistration(r); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// allocated is the bytes allocated by fn (runtime.MemStats.TotalAlloc):
// a measure of work that does not depend on the machine's speed.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestRegistrationPagesOfHundredThousand stores 100,000 registrations in a
// real file and pages, filters and searches them: every endpoint once and
// in order, the filters exact, and a page costs what its own records cost,
// not the fleet's (allocations measured against loading all of them).
func TestRegistrationPagesOfHundredThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 100,000 registrations")
	}
	path := filepath.Join(t.TempDir(), "fleet.db")
	s := openAt(t, path)
	defer s.Close()
	putFleet(t, s, fleetSize)

	// Every endpoint once, in order, through pages of 1000.
	q := store.RegistrationQuery{Limit: store.MaxPage}
	seen, pages := 0, 0
	for {
		regs, err := s.RegistrationPage(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range regs {
			if want := fmt.Sprintf("dev-%06d", seen); r.Endpoint != want || r.ID != fmt.Sprintf("r%06d", seen) {
				t.Fatalf("endpoint %d is %s (%s), want %s", seen, r.Endpoint, r.ID, want)
			}
			seen++
		}
		pages++
		if len(regs) < q.Limit {
			break
		}
		q.After = regs[len(regs)-1].Endpoint
	}
	if seen != fleetSize || pages != fleetSize/store.MaxPage+1 {
		t.Fatalf("%d endpoints in %d pages", seen, pages)
	}

	// Filters: PSK devices in queue mode are every 30th; the search
	// "dev-0999" finds dev-099900 to dev-099999 and nothing else.
	yes := true
	regs, err := s.RegistrationPage(store.RegistrationQuery{After: "dev-050000", Limit: 5, Security: "psk", Queue: &yes})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range regs {
		got = append(got, r.Endpoint)
	}
	if strings.Join(got, " ") != "dev-050010 dev-050040 dev-050070 dev-050100 dev-050130" {
		t.Fatalf("psk queue-mode page after dev-050000: %v", got)
	}
	regs, err = s.RegistrationPage(store.RegistrationQuery{Limit: 1000, Search: "DEV-0999"})
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 100 || regs[0].Endpoint != "dev-099900" || regs[99].Endpoint != "dev-099999" {
		t.Fatalf("search dev-0999: %d, %v ... %v", len(regs), regs[0].Endpoint, regs[len(regs)-1].Endpoint)
	}

	// What a page costs: loading every registration allocates for all
	// 100,000; a page of 50 from the middle, and a search that walks the
	// whole index to find one device, allocate for what they return.
	all := allocated(func() {
		if regs, err := s.Registrations(); err != nil || len(regs) != fleetSize {
			t.Fatalf("all registrations: %d, %v", len(regs), err)
		}
	})
	page := allocated(func() {
		if regs, err := s.RegistrationPage(store.RegistrationQuery{After: "dev-060000", Limit: 50}); err != nil || len(regs) != 50 {
			t.Fatalf("page: %d, %v", len(regs), err)
		}
	})
	rare := allocated(func() {
		if regs, err := s.RegistrationPage(store.RegistrationQuery{Limit: 50, Search: "dev-077777"}); err != nil || len(regs) != 1 {
			t.Fatalf("search: %d, %v", len(regs), err)
		}
	})
	t.Logf("allocated: all %d B, page of 50 %d B, search over all %d B", all, page, rare)
	if page > all/500 || rare > all/500 {
		t.Fatalf("a page allocates %d B and a search %d B, loading all %d B: paging does not bound the work", page, rare, all)
	}
}

// A file written before the endpoint index existed gets it on open.
func TestEndpointIndexBuiltOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	s := openAt(t, path)
	putFleet(t, s, 300)
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketRegEndpoints) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	defer s.Close()
	if !strings.Contains(s.Migrated, "endpoint index of 300 registrations") {
		t.Fatalf("Migrated = %q", s.Migrated)
	}
	regs, err := s.RegistrationPage(store.RegistrationQuery{After: "dev-000100", Limit: 3, Security: "psk"})
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 3 || regs[0].Endpoint != "dev-000110" || regs[2].Endpoint != "dev-000130" {
		t.Fatalf("page after the index was built: %+v", regs)
	}
}

// BenchmarkRegistrationPage reads a page of 50 from a store of 100,000
// registrations: from a cursor, and with a search that walks the index.
func BenchmarkRegistrationPage(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "fleet.db"))
	defer s.Close()
	putFleet(b, s, fleetSize)
	b.Run("cursor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.RegistrationPage(store.RegistrationQuery{After: fmt.Sprintf("dev-%06d", i%fleetSize), Limit: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("search-all", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.RegistrationPage(store.RegistrationQuery{Limit: 50, Search: "dev-077777"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load-all", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.Registrations(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
