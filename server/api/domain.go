package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/store"
)

// Domains (tenants) and roles. Every request acts for one principal: the
// operator's token (Config.Token, FOTA_API_TOKEN) is the super-admin, who
// creates domains and is the administrator of the default domain; every
// other token belongs to one domain with one role. What a route needs is
// the Role of its entry in operations.go: the table the OpenAPI document
// is built from is the one enforced here, so a route cannot be documented
// with one rule and served with another.
//
// A record belongs to the domain that claimed it (store.DomainStore); one
// nobody claimed is the default domain's. A request about another domain's
// record is answered as if it did not exist (404), so nothing of the
// other domain, not even that the name is in use, leaks where it can be
// avoided; creating a name another domain holds is refused (409) without
// saying whose it is.

// Roles in rank order; roleRoot is the operator's token only.
const roleRoot = "root"

var roleRank = map[string]int{store.RoleViewer: 1, store.RoleOperator: 2, store.RoleAdmin: 3, roleRoot: 4}

// principal is who a request acts for.
type principal struct {
	Domain string
	Role   string
	// Actor names the credential in the audit trail.
	Actor string
	Root  bool
}

func (p *principal) may(role string) bool {
	need, ok := roleRank[role]
	return ok && roleRank[p.Role] >= need
}

type principalKey struct{}

// principalOf is the principal ServeHTTP put in the request's context.
func principalOf(r *http.Request) *principal {
	if p, ok := r.Context().Value(principalKey{}).(*principal); ok {
		return p
	}
	// Handlers run only behind ServeHTTP; this is the narrowest answer if
	// one does not.
	return &principal{Domain: "\x00none", Role: ""}
}

// bearer is the token a request presents ("" for none).
func bearer(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		// EventSource in browsers cannot set headers.
		tok = r.URL.Query().Get("token")
	}
	return tok
}

// hashToken is what the store keeps of a token: its SHA-256. A token is 32
// random bytes, so a fast hash is enough (nobody can guess a preimage of
// 256 random bits, which a slow password hash defends against for
// human-chosen secrets), and equal hashes find the token by index without
// a per-request key derivation.
func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// authenticate resolves the request's token; nil and why when it is
// missing, unknown, expired or revoked.
func (a *API) authenticate(r *http.Request) (*principal, string) {
	tok := bearer(r)
	if tok == "" {
		return nil, "missing bearer token"
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.Token)) == 1 {
		p := &principal{Domain: store.DefaultDomain, Role: roleRoot, Actor: "api-token", Root: true}
		// The super-admin may act in a domain it names (a hosted
		// service's support, say): X-Fota-Domain, audited in that domain.
		if d := r.Header.Get("X-Fota-Domain"); d != "" && d != store.DefaultDomain {
			if !a.domainExists(d) {
				return nil, fmt.Sprintf("X-Fota-Domain %q: no such domain (GET /api/domains lists them)", d)
			}
			p.Domain, p.Actor = d, "api-token in "+d
		}
		return p, ""
	}
	if a.cfg.Domains == nil {
		return nil, "wrong bearer token"
	}
	t, err := a.cfg.Domains.TokenByHash(hashToken(tok))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, "wrong bearer token"
	case err != nil:
		a.log.Error("token lookup", "err", err)
		return nil, "the token store did not answer; try again"
	case !t.Revoked.IsZero():
		return nil, "token " + t.ID + " was revoked on " + t.Revoked.Format(time.RFC3339) + ": ask the domain's administrator for a new one"
	case !t.Expires.IsZero() && !time.Now().Before(t.Expires):
		return nil, "token " + t.ID + " expired on " + t.Expires.Format(time.RFC3339) + ": ask the domain's administrator for a new one"
	}
	return &principal{Domain: t.Domain, Role: t.Role, Actor: "token " + t.ID + " (" + t.Role + ")"}, ""
}

// domainExists reports whether domain d was created.
func (a *API) domainExists(d string) bool {
	if a.cfg.Domains == nil {
		return false
	}
	ds, err := a.cfg.Domains.Domains()
	if err != nil {
		a.log.Error("read domains", "err", err)
		return false
	}
	for _, x := range ds {
		if x.Name == d {
			return true
		}
	}
	return false
}

// owner is the domain of (kind, key): the one that claimed it, else the
// default domain.
func (a *API) owner(kind, key string) (string, error) {
	if a.cfg.Domains == nil {
		return store.DefaultDomain, nil
	}
	d, err := a.cfg.Domains.Owner(kind, key)
	if errors.Is(err, store.ErrNotFound) {
		return store.DefaultDomain, nil
	}
	return d, err
}

// mine reports whether (kind, key) is p's domain's.
func (a *API) mine(p *principal, kind, key string) bool {
	d, err := a.owner(kind, key)
	if err != nil {
		a.log.Error("owner lookup", "kind", kind, "key", key, "err", err)
		return false
	}
	return d == p.Domain
}

// ownedBy returns a filter for listings: whether a key of kind is p's
// domain's, from one read of the kind's owners.
func (a *API) ownedBy(p *principal, kind string) (func(key string) bool, error) {
	if a.cfg.Domains == nil {
		return func(string) bool { return true }, nil
	}
	owners, err := a.cfg.Domains.Owners(kind)
	if err != nil {
		return nil, err
	}
	return func(key string) bool {
		d, ok := owners[key]
		if !ok {
			d = store.DefaultDomain
		}
		return d == p.Domain
	}, nil
}

// claim makes (kind, key) p's domain's before p creates it; false (and
// the request answered 409) when another domain holds the name. A name
// nobody claimed that is in use already (a device registered before
// domains, an image of the type) is the default domain's.
func (a *API) claim(w http.ResponseWriter, p *principal, kind, key string) bool {
	if a.cfg.Domains == nil {
		return true
	}
	d, err := a.cfg.Domains.Owner(kind, key)
	if errors.Is(err, store.ErrNotFound) && p.Domain != store.DefaultDomain && a.inUse(kind, key) {
		d, err = store.DefaultDomain, nil
	}
	if err == nil && d != p.Domain {
		httpError(w, http.StatusConflict, fmt.Sprintf("%s %q is another domain's: choose another name", kind, key))
		return false
	}
	if err := a.cfg.Domains.Claim(kind, key, p.Domain); err != nil {
		if errors.Is(err, store.ErrExists) {
			httpError(w, http.StatusConflict, fmt.Sprintf("%s %q is another domain's: choose another name", kind, key))
		} else {
			httpError(w, http.StatusInternalServerError, "record the domain of "+kind+" "+strconv.Quote(key)+": "+err.Error())
		}
		return false
	}
	return true
}

// inUse reports whether an unclaimed name has records already (then the
// default domain's, from before domains).
func (a *API) inUse(kind, key string) bool {
	switch kind {
	case store.OwnEndpoint:
		if a.dm != nil {
			if a.dm.Device(key) != nil {
				return true
			}
			if cs, err := a.dm.Credentials(); err == nil {
				for _, c := range cs {
					if c.Endpoint == key {
						return true
					}
				}
			}
		}
		if a.cfg.Bootstrap != nil {
			if _, err := a.cfg.Bootstrap.Config(key); err == nil {
				return true
			}
		}
	case store.OwnDeviceType:
		if a.cfg.Firmware != nil {
			if imgs, err := a.cfg.Firmware.Images(); err == nil {
				for _, i := range imgs {
					if i.DeviceType == key {
						return true
					}
				}
			}
		}
	}
	return false
}

// pathKinds: which record a path parameter names, by route prefix.
func pathKind(pattern, param string) string {
	_, path, _ := strings.Cut(pattern, " ")
	switch {
	case param == "ep":
		return store.OwnEndpoint
	case param == "type":
		return store.OwnDeviceType
	case param == "id" && strings.HasPrefix(path, "/api/firmware/"):
		return store.OwnImage
	case param == "id" && strings.HasPrefix(path, "/api/campaigns/"):
		return store.OwnCampaign
	}
	return ""
}

// guard wraps a route's handler: each record its path names must be the
// principal's domain's (a route whose entry Claims creates the name, and
// claims it instead). Roles are checked before, in ServeHTTP.
func (a *API) guard(pattern string, h http.Handler) http.Handler {
	var params []string
	for _, m := range patternParam.FindAllStringSubmatch(pattern, -1) {
		if pathKind(pattern, m[1]) != "" {
			params = append(params, m[1])
		}
	}
	if len(params) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r)
		for _, name := range params {
			kind, key := pathKind(pattern, name), r.PathValue(name)
			if a.claims[pattern] {
				if !a.claim(w, p, kind, key) {
					return
				}
				continue
			}
			if !a.mine(p, kind, key) {
				httpError(w, http.StatusNotFound, fmt.Sprintf("no %s %q in domain %s", kind, key, p.Domain))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// eventVisible reports whether an SSE event is p's domain's: a device's
// by its endpoint, a campaign's by the campaign.
func (a *API) eventVisible(p *principal, e events.Event) bool {
	if e.Endpoint != "" {
		return a.mine(p, store.OwnEndpoint, e.Endpoint)
	}
	if m, ok := e.Data.(map[string]any); ok {
		if id, ok := m["campaign"].(string); ok {
			return a.mine(p, store.OwnCampaign, id)
		}
	}
	return p.Domain == store.DefaultDomain
}

// --- domains and tokens ---

var domainName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func (a *API) domainRoutes() {
	a.mux.HandleFunc("POST /api/domains", a.domainCreate)
	a.mux.HandleFunc("GET /api/domains", a.domainList)
	a.mux.HandleFunc("POST /api/tokens", a.tokenCreate)
	a.mux.HandleFunc("GET /api/tokens", a.tokenList)
	a.mux.HandleFunc("DELETE /api/tokens/{id}", a.tokenRevoke)
}

func (a *API) domainCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name string `json:"name"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		httpError(w, http.StatusBadRequest, `domain: want {"name": "water"}: `+err.Error())
		return
	}
	if !domainName.MatchString(body.Name) {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("domain name %q: 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit", body.Name))
		return
	}
	d := store.Domain{Name: body.Name, Created: time.Now().UTC().Truncate(time.Second)}
	if err := a.cfg.Domains.AddDomain(d); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, store.ErrExists) {
			code = http.StatusConflict
		}
		httpError(w, code, "create domain "+strconv.Quote(body.Name)+": "+err.Error())
		return
	}
	t, secret, err := a.newToken(d.Name, store.RoleAdmin, "administrator of "+d.Name, time.Time{})
	if err != nil {
		httpError(w, http.StatusInternalServerError, "domain "+d.Name+" created, but its administrator token not: "+err.Error()+"; POST /api/tokens as the operator to make one")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"name": d.Name, "created": d.Created, "adminToken": secret, "adminTokenId": t.ID})
}

func (a *API) domainList(w http.ResponseWriter, r *http.Request) {
	ds, err := a.cfg.Domains.Domains()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []store.Domain{{Name: store.DefaultDomain}}
	writeJSON(w, http.StatusOK, append(out, ds...))
}

// newToken makes and stores a token; the secret is returned once and kept
// only as its hash.
func (a *API) newToken(domain, role, name string, expires time.Time) (store.Token, string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return store.Token{}, "", err
	}
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return store.Token{}, "", err
	}
	secret := "fota_" + hex.EncodeToString(raw)
	t := store.Token{ID: hex.EncodeToString(id), Domain: domain, Role: role, Name: name, Hash: hashToken(secret),
		Created: time.Now().UTC().Truncate(time.Second), Expires: expires}
	return t, secret, a.cfg.Domains.PutToken(t)
}

// tokenJSON is a token as listed: never its hash.
func tokenJSON(t store.Token) map[string]any {
	m := map[string]any{"id": t.ID, "domain": t.Domain, "role": t.Role, "name": t.Name, "created": t.Created}
	if !t.Expires.IsZero() {
		m["expires"] = t.Expires
	}
	if !t.Revoked.IsZero() {
		m["revoked"] = t.Revoked
	}
	return m
}

func (a *API) tokenCreate(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	var body struct {
		Role    string `json:"role"`
		Name    string `json:"name"`
		Expires string `json:"expires"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		httpError(w, http.StatusBadRequest, `token: want {"role": "viewer", "expires": "720h"}: `+err.Error())
		return
	}
	if _, ok := roleRank[body.Role]; !ok || body.Role == roleRoot {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("role %q: want viewer, operator or administrator", body.Role))
		return
	}
	var expires time.Time
	if body.Expires != "" {
		if d, err := time.ParseDuration(body.Expires); err == nil && d > 0 {
			expires = time.Now().Add(d).UTC().Truncate(time.Second)
		} else if t, err := time.Parse(time.RFC3339, body.Expires); err == nil && t.After(time.Now()) {
			expires = t.UTC()
		} else {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("expires %q: want a duration (720h) or a future RFC 3339 time", body.Expires))
			return
		}
	}
	if len(body.Name) > 128 {
		httpError(w, http.StatusBadRequest, "token name: at most 128 bytes")
		return
	}
	t, secret, err := a.newToken(p.Domain, body.Role, body.Name, expires)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "store the token: "+err.Error())
		return
	}
	out := tokenJSON(t)
	out["token"] = secret
	writeJSON(w, http.StatusCreated, out)
}

func (a *API) tokenList(w http.ResponseWriter, r *http.Request) {
	ts, err := a.cfg.Domains.Tokens(principalOf(r).Domain)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []map[string]any{}
	for _, t := range ts {
		out = append(out, tokenJSON(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) tokenRevoke(w http.ResponseWriter, r *http.Request) {
	p, id := principalOf(r), r.PathValue("id")
	ts, err := a.cfg.Domains.Tokens(p.Domain)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, t := range ts {
		if t.ID != id {
			continue
		}
		if t.Revoked.IsZero() {
			t.Revoked = time.Now().UTC().Truncate(time.Second)
			if err := a.cfg.Domains.PutToken(t); err != nil {
				httpError(w, http.StatusInternalServerError, "revoke token "+id+": "+err.Error())
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	httpError(w, http.StatusNotFound, fmt.Sprintf("no token %q in domain %s", id, p.Domain))
}

// withPrincipal is r acting for p.
func withPrincipal(r *http.Request, p *principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}
