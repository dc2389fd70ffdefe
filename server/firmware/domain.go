package firmware

import (
	"errors"
	"sync"

	"github.com/fotastack/fota/server/store"
)

// DomainOf answers the domain that owns (kind, key):
// store.DomainStore.Owner, ErrNotFound when none claimed it.
type DomainOf func(kind, key string) (string, error)

// domainCheck remembers, per device and package, whether a download is
// allowed: the check runs once per download, not once per Block2 request
// (each of which would otherwise cost two store reads on the hot path).
type domainCheck struct {
	of      DomainOf
	mu      sync.Mutex
	allowed map[[2]string]bool
}

// maxDomainChecks bounds the memory of remembered checks; past it they are
// forgotten and made again.
const maxDomainChecks = 16384

// SetDomains makes downloads domain-aware: a device may fetch only its own
// domain's packages (a package is its target image's domain's). Without it
// (one domain) every package is served to every device.
func (f *Repository) SetDomains(of DomainOf) {
	f.domains = &domainCheck{of: of, allowed: map[[2]string]bool{}}
}

// sameDomain reports whether the device ep (or an unauthenticated peer,
// ep "": the default domain) may download p.
func (f *Repository) sameDomain(ep string, p store.Package) bool {
	dc := f.domains
	if dc == nil {
		return true
	}
	k := [2]string{ep, p.ID}
	dc.mu.Lock()
	ok, seen := dc.allowed[k]
	dc.mu.Unlock()
	if seen {
		return ok
	}
	devDomain, err := dc.owner(store.OwnEndpoint, ep)
	if err != nil {
		return false // refused now, asked again on the device's next request
	}
	imgDomain, err := dc.owner(store.OwnImage, p.ToImage)
	if err != nil {
		return false
	}
	ok = devDomain == imgDomain
	dc.mu.Lock()
	if len(dc.allowed) >= maxDomainChecks {
		clear(dc.allowed)
	}
	dc.allowed[k] = ok
	dc.mu.Unlock()
	return ok
}

// owner is the domain of (kind, key), the default one when unclaimed (and
// for an unauthenticated peer, key "").
func (dc *domainCheck) owner(kind, key string) (string, error) {
	if key == "" {
		return store.DefaultDomain, nil
	}
	d, err := dc.of(kind, key)
	if errors.Is(err, store.ErrNotFound) {
		return store.DefaultDomain, nil
	}
	return d, err
}
