package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/fotastack/fota/server/store"
)

func testDomains(t *testing.T, b Backend) {
	s := open(t, b)
	must(t, s.AddDomain(store.Domain{Name: "water", Created: now}))
	wantErr(t, "add water twice", s.AddDomain(store.Domain{Name: "water", Created: now}), store.ErrExists)
	wantErr(t, "add the default domain", s.AddDomain(store.Domain{Name: store.DefaultDomain}), store.ErrExists)
	must(t, s.AddDomain(store.Domain{Name: "power", Created: now}))
	ds, err := s.Domains()
	must(t, err)
	if len(ds) != 2 || !ds[0].Created.Equal(now) {
		t.Fatalf("domains: %+v", ds)
	}

	tok := store.Token{ID: "t1", Domain: "water", Role: store.RoleViewer, Hash: "aa11", Created: now, Expires: now.Add(3600e9)}
	must(t, s.PutToken(tok))
	must(t, s.PutToken(store.Token{ID: "t2", Domain: "power", Role: store.RoleAdmin, Hash: "bb22", Created: now}))
	wantErr(t, "a second token with t1's hash", s.PutToken(store.Token{ID: "t3", Domain: "power", Hash: "aa11"}), store.ErrExists)
	got, err := s.TokenByHash("aa11")
	must(t, err)
	if got.ID != "t1" || got.Domain != "water" || got.Role != store.RoleViewer || !got.Expires.Equal(tok.Expires) || !got.Revoked.IsZero() {
		t.Fatalf("token by hash: %+v", got)
	}
	_, err = s.TokenByHash("cc33")
	wantErr(t, "unknown hash", err, store.ErrNotFound)
	tok.Revoked = now
	must(t, s.PutToken(tok))
	got, err = s.TokenByHash("aa11")
	must(t, err)
	if !got.Revoked.Equal(now) {
		t.Fatalf("revocation not kept: %+v", got)
	}
	ts, err := s.Tokens("water")
	must(t, err)
	if len(ts) != 1 || ts[0].ID != "t1" {
		t.Fatalf("water's tokens: %+v", ts)
	}

	// The audit trail keeps each entry's domain.
	must(t, s.AddAudit(store.AuditEntry{Time: now, Actor: "token t1", Action: "GET /api/clients", Status: 200, Domain: "water"}, 10))
	a, err := s.Audit(1)
	must(t, err)
	if len(a) != 1 || a[0].Domain != "water" {
		t.Fatalf("audit domain: %+v", a)
	}
}

func testOwnership(t *testing.T, b Backend) {
	s := open(t, b)
	_, err := s.Owner(store.OwnEndpoint, "dev-1")
	wantErr(t, "owner of an unclaimed endpoint", err, store.ErrNotFound)
	must(t, s.Claim(store.OwnEndpoint, "dev-1", "water"))
	must(t, s.Claim(store.OwnEndpoint, "dev-1", "water")) // again: nil
	wantErr(t, "power claims water's endpoint", s.Claim(store.OwnEndpoint, "dev-1", "power"), store.ErrExists)
	must(t, s.Claim(store.OwnImage, "dev-1", "power")) // kinds are separate namespaces
	d, err := s.Owner(store.OwnEndpoint, "dev-1")
	must(t, err)
	if d != "water" {
		t.Fatalf("owner of dev-1: %q", d)
	}
	m, err := s.Owners(store.OwnEndpoint)
	must(t, err)
	if len(m) != 1 || m["dev-1"] != "water" {
		t.Fatalf("owners: %v", m)
	}
	must(t, s.Release(store.OwnEndpoint, "dev-1"))
	must(t, s.Release(store.OwnEndpoint, "dev-1"))
	must(t, s.Claim(store.OwnEndpoint, "dev-1", "power"))

	// Many domains racing for one name: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dom := fmt.Sprintf("d%d", i)
			if err := s.Claim(store.OwnCampaign, "c-1", dom); err == nil {
				wins <- dom
			}
		}()
	}
	wg.Wait()
	close(wins)
	var won []string
	for w := range wins {
		won = append(won, w)
	}
	owner, err := s.Owner(store.OwnCampaign, "c-1")
	must(t, err)
	if len(won) != 1 || won[0] != owner {
		t.Fatalf("racing claims: winners %v, owner %q", won, owner)
	}
}
