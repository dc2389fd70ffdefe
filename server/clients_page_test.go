package server_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/server/servertest"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/bolt"
)

type clientPage struct {
	Clients []struct {
		Endpoint  string `json:"endpoint"`
		Security  string `json:"security"`
		QueueMode bool   `json:"queueMode"`
	} `json:"clients"`
	Next       string `json:"next"`
	Registered int    `json:"registered"`
}

// GET /api/clients pages the registrations a restarted server restored
// from its bbolt file: every endpoint once and in order by following
// next, filters and search exact, bad parameters refused, and the
// parameterless answer still Leshan's array.
func TestClientsPaged(t *testing.T) {
	const n = 3000
	path := filepath.Join(t.TempDir(), "fota.db")
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var wg sync.WaitGroup
	for w := 0; w < 100; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 100 {
				sec := []string{"none", "psk", "x509"}[i%3]
				err := st.PutRegistration(store.Registration{ID: fmt.Sprintf("r%d", i), Endpoint: fmt.Sprintf("meter-%05d", i), Lifetime: 86400,
					Version: "1.1", Binding: "U", Queue: i%2 == 1, Links: "</3/0>", Address: "127.0.0.1:1", Transport: "coaps", Security: sec, Created: now, Updated: now})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	s := servertest.StartAt(t, path)

	var eps []string
	after := ""
	for pages := 0; ; pages++ {
		var p clientPage
		if code := s.API("GET", "/api/clients?limit=700&after="+after, nil, &p); code != 200 {
			t.Fatalf("page %d: %d", pages, code)
		}
		if p.Registered != n || len(p.Clients) > 700 {
			t.Fatalf("page %d: %d clients, registered %d", pages, len(p.Clients), p.Registered)
		}
		for _, c := range p.Clients {
			eps = append(eps, c.Endpoint)
		}
		if p.Next == "" {
			break
		}
		if pages > n/700+1 {
			t.Fatal("paging does not end")
		}
		after = p.Next
	}
	if len(eps) != n {
		t.Fatalf("%d endpoints paged, want %d", len(eps), n)
	}
	for i, ep := range eps {
		if want := fmt.Sprintf("meter-%05d", i); ep != want {
			t.Fatalf("endpoint %d is %s, want %s", i, ep, want)
		}
	}

	var p clientPage
	s.API("GET", "/api/clients?q=METER-0123&security=psk&queue=false", nil, &p)
	var got []string
	for _, c := range p.Clients {
		if c.Security != "psk" || c.QueueMode {
			t.Errorf("filtered page holds %+v", c)
		}
		got = append(got, c.Endpoint)
	}
	// meter-01230..01239: psk is i%3==1, not queue mode is even i.
	if strings.Join(got, " ") != "meter-01234" || p.Next != "" {
		t.Fatalf("q=METER-0123&security=psk&queue=false: %v next %q", got, p.Next)
	}

	var all []map[string]any
	if code := s.API("GET", "/api/clients", nil, &all); code != 200 || len(all) != n {
		t.Fatalf("unpaged list: %d, %d clients", code, len(all))
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "security=tls", "queue=maybe"} {
		if code := s.API("GET", "/api/clients?"+bad, nil, nil); code != 400 {
			t.Errorf("GET /api/clients?%s = %d, want 400", bad, code)
		}
	}
}
