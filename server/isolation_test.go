package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/servertest"
	"github.com/fotastack/fota/server/store"
)

// call is one API request with a bearer token.
func call(t *testing.T, srv *servertest.Server, token, method, path, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// tenant is one domain's tokens by role and the names of its records.
type tenant struct {
	name     string
	tokens   map[string]string // role -> secret
	tokenIDs []string
	ep, bsEp string
	devType  string
	image    string
	campaign string
	key      string // its device's PSK, hex
}

var roles = []string{store.RoleViewer, store.RoleOperator, store.RoleAdmin}

var rank = map[string]int{store.RoleViewer: 1, store.RoleOperator: 2, store.RoleAdmin: 3, "root": 4}

func mustCall(t *testing.T, srv *servertest.Server, token, method, path string, body any, want int) []byte {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	code, data := call(t, srv, token, method, path, "application/json", b)
	if code != want {
		t.Fatalf("%s %s: %d %s (want %d)", method, path, code, data, want)
	}
	return data
}

// makeTenant creates a domain and, with its own tokens, its records: a
// device credential, a bootstrap configuration and credential, an image
// and a package of its own device type, a profile, a paused campaign.
func makeTenant(t *testing.T, srv *servertest.Server, name string, seed int64) *tenant {
	var d struct{ AdminToken string }
	json.Unmarshal(mustCall(t, srv, servertest.Token, "POST", "/api/domains", map[string]string{"name": name}, 201), &d)
	tn := &tenant{name: name, tokens: map[string]string{store.RoleAdmin: d.AdminToken}, ep: name + "-dev", bsEp: name + "-boot",
		devType: name + "-type", key: hex.EncodeToString([]byte(name + "-psk-key"))}
	for _, r := range []string{store.RoleViewer, store.RoleOperator} {
		var tok struct{ ID, Token string }
		json.Unmarshal(mustCall(t, srv, d.AdminToken, "POST", "/api/tokens", map[string]string{"role": r, "expires": "1h"}, 201), &tok)
		tn.tokens[r], tn.tokenIDs = tok.Token, append(tn.tokenIDs, tok.ID)
	}
	admin, op := tn.tokens[store.RoleAdmin], tn.tokens[store.RoleOperator]
	for _, ep := range []string{tn.ep, name + "-ghost"} {
		mustCall(t, srv, admin, "PUT", "/api/security/clients", map[string]any{"endpoint": ep,
			"tls": map[string]any{"mode": "psk", "details": map[string]string{"identity": ep + "-id", "key": tn.key}}}, 200)
	}
	mustCall(t, srv, admin, "PUT", "/api/bootstrap/"+tn.bsEp, dmConfig(), 200)
	mustCall(t, srv, admin, "PUT", "/api/bootstrap/security/clients", map[string]any{"endpoint": tn.bsEp,
		"tls": map[string]any{"mode": "psk", "details": map[string]string{"identity": tn.bsEp + "-id", "key": tn.key}}}, 204)
	img, _ := testImages(4<<10, seed)
	code, data := call(t, srv, op, "POST", "/api/firmware?deviceType="+tn.devType+"&version=1.0.0", "application/octet-stream", img)
	if code != 201 {
		t.Fatalf("%s uploads an image: %d %s", name, code, data)
	}
	var im struct{ ID string }
	json.Unmarshal(data, &im)
	tn.image = im.ID
	mustCall(t, srv, op, "POST", "/api/firmware/packages?image="+tn.image+"&full=true", nil, 200)
	mustCall(t, srv, op, "PUT", "/api/firmware/types/"+tn.devType, map[string]int{"eraseBlock": 4096, "ram": 16384}, 200)
	var c struct{ ID string }
	json.Unmarshal(mustCall(t, srv, op, "POST", "/api/campaigns", map[string]any{"image": tn.image,
		"targets": map[string]any{"endpoints": []string{name + "-ghost"}}}, 201), &c)
	tn.campaign = c.ID
	mustCall(t, srv, op, "POST", "/api/campaigns/"+c.ID+"/pause", nil, 200)
	return tn
}

// request is what the walk sends on one route about one domain's records.
func (tn *tenant) request(route string) (method, path, ctype string, body []byte) {
	method, tmpl, _ := strings.Cut(route, " ")
	values := map[string]string{"ep": tn.ep, "path": "3/0", "type": tn.devType, "action": "pause", "id": tn.image}
	switch {
	case strings.HasPrefix(tmpl, "/api/bootstrap/"):
		values["ep"] = tn.bsEp
	case strings.HasPrefix(tmpl, "/api/campaigns/"):
		values["id"] = tn.campaign
	case strings.HasPrefix(tmpl, "/api/tokens/"):
		values["id"] = tn.tokenIDs[0]
	}
	param := regexp.MustCompile(`\{(\w+)(\.\.\.)?\}`)
	path = param.ReplaceAllStringFunc(tmpl, func(m string) string {
		if v, ok := values[param.FindStringSubmatch(m)[1]]; ok {
			return v
		}
		return "x"
	})
	j := func(v any) []byte { b, _ := json.Marshal(v); return b }
	cred := j(map[string]any{"endpoint": tn.ep, "tls": map[string]any{"mode": "psk", "details": map[string]string{"identity": tn.ep + "-new", "key": "00112233"}}})
	switch route {
	case "PUT /api/security/clients":
		return method, path, "application/json", cred
	case "PUT /api/bootstrap/security/clients":
		return method, path, "application/json", j(map[string]any{"endpoint": tn.bsEp, "tls": map[string]any{"mode": "psk", "details": map[string]string{"identity": tn.bsEp + "-new", "key": "00112233"}}})
	case "POST /api/firmware":
		return method, path + "?deviceType=" + tn.devType + "&version=9.0.0", "application/octet-stream", []byte("an image of another domain's type")
	case "POST /api/firmware/packages":
		return method, path + "?image=" + tn.image + "&full=true", "", nil
	case "POST /api/campaigns":
		return method, path, "application/json", j(map[string]any{"image": tn.image, "targets": map[string]any{"endpoints": []string{tn.ep}}})
	case "PUT /api/clients/{ep}/{path...}":
		return method, "/api/clients/" + tn.ep + "/3/0/1", "text/plain", []byte("x")
	case "POST /api/clients/{ep}/{path...}":
		return method, "/api/clients/" + tn.ep + "/3/0/4", "text/plain", nil
	case "PUT /api/bootstrap/{ep}", "PUT /api/firmware/types/{type}":
		return method, path, "application/json", []byte(`{}`)
	case "POST /api/domains":
		return method, path, "application/json", j(map[string]string{"name": "z" + tn.name})
	case "POST /api/tokens":
		return method, path, "application/json", j(map[string]string{"role": "administrator"})
	}
	return method, path, "", nil
}

// addressed reports whether a route names a record (a path parameter, or
// one in its body or query): the walk must see it refused.
func addressed(route string) bool {
	switch route {
	case "PUT /api/security/clients", "PUT /api/bootstrap/security/clients", "POST /api/firmware",
		"POST /api/firmware/packages", "POST /api/campaigns":
		return true
	}
	return strings.Contains(route, "{")
}

// snapshot is everything the store holds but the audit trail and the
// walking domain's own tokens (its administrator may make tokens of its
// domain): equal snapshots, nothing changed.
func snapshot(t *testing.T, st store.Store, except string) string {
	var out []string
	add := func(what string, v any, err error) {
		if err != nil {
			t.Fatalf("snapshot %s: %v", what, err)
		}
		b, _ := json.Marshal(v)
		out = append(out, what+"="+string(b))
	}
	regs, err := st.Registrations()
	add("registrations", regs, err)
	creds, err := st.Credentials()
	add("credentials", creds, err)
	bc, err := st.BootstrapConfigs()
	add("bootstrap", bc, err)
	bcs, err := st.BootstrapCredentials()
	add("bootstrapCredentials", bcs, err)
	imgs, err := st.Images()
	add("images", imgs, err)
	pkgs, err := st.Packages()
	add("packages", pkgs, err)
	cs, err := st.Campaigns()
	add("campaigns", cs, err)
	for _, c := range cs {
		ds, err := st.CampaignDevices(c.ID)
		sort.Slice(ds, func(i, j int) bool { return ds[i].Endpoint < ds[j].Endpoint })
		add("campaign "+c.ID, ds, err)
	}
	ds, err := st.Domains()
	add("domains", ds, err)
	for _, d := range ds {
		if d.Name != except {
			ts, err := st.Tokens(d.Name)
			add("tokens "+d.Name, ts, err)
		}
	}
	for _, k := range []string{store.OwnEndpoint, store.OwnImage, store.OwnDeviceType, store.OwnCampaign} {
		o, err := st.Owners(k)
		add("owners "+k, o, err)
	}
	for _, ep := range []string{"a-dev", "b-dev"} {
		h, err := st.History(ep, 1000)
		add("history "+ep, h, err)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// TestDomainIsolation walks every route of the OpenAPI document with
// domain a's tokens of each role against domain b's records, and with too
// weak a role against a's own: every request is refused, no answer names
// anything of b the request did not name itself, and the store (all but
// the audit trail) is unchanged. Then: SSE events and the audit trail are
// the domain's own; a device with a's credential cannot register as b's
// endpoint; expired and revoked tokens are refused and audited.
func TestDomainIsolation(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) {
		c.Bootstrap = bootstrap.Options{CoAPSAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	})
	a, b := makeTenant(t, srv, "a", 1), makeTenant(t, srv, "b", 2)
	// b's device registers over DTLS with b's credential: b's by how it
	// authenticated.
	bdev := newTestDevice(t, b.ep)
	bkey, _ := hex.DecodeString(b.key)
	if err := bdev.dialPSK(srv.CoAPSAddr(), b.ep+"-id", bkey); err != nil {
		t.Fatal(err)
	}
	if r := bdev.register(); r.Code != codes.Created {
		t.Fatalf("b's device registers: %v", r.Code)
	}
	// Firmware downloads stay in the domain too: b's device fetches b's
	// package over CoAP, and a's answers 4.04 as if it did not exist.
	pkgs, err := srv.Store.Packages()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		want := codes.Content
		if p.ToImage == a.image {
			want = codes.NotFound
		} else if p.ToImage != b.image {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := bdev.cc.Get(ctx, firmware.PathOf(p))
		cancel()
		if err != nil {
			t.Fatalf("b's device GET %s: %v", firmware.PathOf(p), err)
		}
		if r.Code() != want {
			t.Fatalf("b's device GET the package of image %s: %v, want %v", p.ToImage, r.Code(), want)
		}
	}
	// a's credential claiming b's endpoint: refused by the DTLS identity's
	// binding to its endpoint.
	akey, _ := hex.DecodeString(a.key)
	thief := newTestDevice(t, b.ep)
	if err := thief.dialPSK(srv.CoAPSAddr(), a.ep+"-id", akey); err != nil {
		t.Fatal(err)
	}
	if r := thief.register(); r.Code == codes.Created {
		t.Fatal("a device with a's credential registered as b's endpoint")
	}

	var doc struct {
		Paths map[string]map[string]struct {
			Role string `json:"x-fota-role"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(mustCall(t, srv, servertest.Token, "GET", "/api/openapi.json", nil, 200), &doc); err != nil {
		t.Fatal(err)
	}
	// The document's {path} is the pattern's {path...}.
	var routes []string
	need := map[string]string{}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			r := strings.ToUpper(m) + " " + strings.ReplaceAll(p, "{path}", "{path...}")
			if op.Role == "" {
				t.Fatalf("%s: no x-fota-role in the document", r)
			}
			routes = append(routes, r)
			need[r] = op.Role
		}
	}
	sort.Strings(routes)
	if len(routes) < 35 {
		t.Fatalf("only %d routes in the document", len(routes))
	}
	// What of b no answer to a may name (unless a's request named it).
	secrets := []string{b.ep, b.bsEp, b.devType, b.image, b.campaign, b.key, "b-ghost", b.tokenIDs[0], b.tokenIDs[1], b.ep + "-id"}
	// The registration's history entry is written behind the event: wait
	// for it, so the snapshot is settled.
	for i := 0; ; i++ {
		if h, _ := srv.Store.History(b.ep, 10); len(h) > 0 {
			break
		}
		if i == 100 {
			t.Fatal("b's device's registration never reached its history")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := snapshot(t, srv.Store, "a")
	asked := "" // all a has asked: an answer may repeat it (the audit trail does)
	refused, listed := 0, 0
	for _, route := range routes {
		if route == "GET /api/event" {
			continue // a stream: below
		}
		for _, role := range roles {
			tok := a.tokens[role]
			if rank[role] < rank[need[route]] {
				// Too weak, against a's own records.
				m, p, ct, body := a.request(route)
				if code, data := call(t, srv, tok, m, p, ct, body); code != http.StatusForbidden {
					t.Errorf("a's %s on its own %s %s: %d %s (want 403)", role, m, p, code, data)
				}
				refused++
			}
			m, p, ct, body := b.request(route)
			code, data := call(t, srv, tok, m, p, ct, body)
			switch {
			case rank[role] < rank[need[route]]:
				if code != http.StatusForbidden {
					t.Errorf("a's %s on b's %s %s: %d %s (want 403)", role, m, p, code, data)
				}
				refused++
			case addressed(route):
				if code != 400 && code != 404 && code != 409 {
					t.Errorf("a's %s on b's %s %s: %d %s (want 400, 404 or 409)", role, m, p, code, data)
				}
				refused++
			default:
				if code >= 300 {
					t.Errorf("a's %s: %s %s: %d %s", role, m, p, code, data)
				}
				listed++
			}
			asked += p + string(body)
			mayRepeat := p + string(body)
			if route == "GET /api/audit" {
				mayRepeat = asked // a's trail lists a's own requests
			}
			for _, s := range secrets {
				if !strings.Contains(mayRepeat, s) && strings.Contains(string(data), s) {
					t.Errorf("a's %s: %s %s answered %q of b: %s", role, m, p, s, data)
				}
			}
		}
	}
	if after := snapshot(t, srv.Store, "a"); after != before {
		t.Errorf("the store changed under a's requests:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("%d routes: %d requests refused, %d listings without b", len(routes), refused, listed)

	// b sees its own: the walk is not vacuous.
	if _, data := call(t, srv, b.tokens[store.RoleViewer], "GET", "/api/clients", "", nil); !strings.Contains(string(data), b.ep) {
		t.Fatalf("b's viewer does not list b's device: %s", data)
	}
	if _, data := call(t, srv, a.tokens[store.RoleAdmin], "GET", "/api/security/clients", "", nil); !strings.Contains(string(data), a.ep) || strings.Contains(string(data), b.ep) {
		t.Fatalf("a's credentials listing: %s", data)
	}

	// The operator's token acts in the default domain, or in one it names.
	if _, data := call(t, srv, servertest.Token, "GET", "/api/clients", "", nil); strings.Contains(string(data), b.ep) {
		t.Fatalf("the operator's token lists b's device in the default domain: %s", data)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/clients", nil)
	req.Header.Set("Authorization", "Bearer "+servertest.Token)
	req.Header.Set("X-Fota-Domain", "b")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(data), b.ep) {
			t.Fatalf("the operator in b: %d %s", resp.StatusCode, data)
		}
	}
	req.Header.Set("X-Fota-Domain", "nosuch")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("the operator in a domain that does not exist: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Events: b's device's update reaches b's stream, not a's.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream := func(tok string) <-chan string {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/event?token="+tok, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 64)
		go func() {
			defer resp.Body.Close()
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		<-lines // the opening comment: subscribed
		return lines
	}
	aEvents, bEvents := stream(a.tokens[store.RoleViewer]), stream(b.tokens[store.RoleViewer])
	if c := bdev.update(); c != codes.Changed {
		t.Fatalf("b's device update: %v", c)
	}
	got := false
	for !got {
		select {
		case l := <-bEvents:
			got = strings.Contains(l, b.ep)
		case <-ctx.Done():
			t.Fatal("b's stream saw no event of its device")
		}
	}
	leak := time.After(500 * time.Millisecond)
	for done := false; !done; {
		select {
		case l := <-aEvents:
			if strings.Contains(l, b.ep) {
				t.Fatalf("a's stream carries b's event: %s", l)
			}
		case <-leak:
			done = true
		}
	}

	// The audit trail: a's refused attempts are a's, none in b's listing.
	var trail []store.AuditEntry
	json.Unmarshal(mustCall(t, srv, b.tokens[store.RoleAdmin], "GET", "/api/audit?limit=10000", nil, 200), &trail)
	for _, e := range trail {
		if strings.Contains(e.Actor, a.tokenIDs[0]) || e.Domain != "b" {
			t.Fatalf("b's audit trail shows %+v", e)
		}
	}
	json.Unmarshal(mustCall(t, srv, a.tokens[store.RoleAdmin], "GET", "/api/audit?limit=10000", nil, 200), &trail)
	forbidden := 0
	for _, e := range trail {
		if e.Status == http.StatusForbidden && e.Domain == "a" {
			forbidden++
		}
	}
	if forbidden == 0 {
		t.Fatal("a's refused attempts are not in its audit trail")
	}

	// A revoked and an expired token: refused with the reason, audited.
	mustCall(t, srv, a.tokens[store.RoleAdmin], "DELETE", "/api/tokens/"+a.tokenIDs[0], nil, 204)
	if code, data := call(t, srv, a.tokens[store.RoleViewer], "GET", "/api/clients", "", nil); code != 401 || !strings.Contains(string(data), "revoked") {
		t.Fatalf("revoked token: %d %s", code, data)
	}
	if code, data := call(t, srv, b.tokens[store.RoleAdmin], "DELETE", "/api/tokens/"+a.tokenIDs[1], "", nil); code != 404 {
		t.Fatalf("b revokes a's token: %d %s", code, data)
	}
	tok, err := srv.Store.TokenByHash(hashOf(a.tokens[store.RoleOperator]))
	if err != nil {
		t.Fatal(err)
	}
	tok.Expires = time.Now().Add(-time.Second).UTC()
	if err := srv.Store.PutToken(tok); err != nil {
		t.Fatal(err)
	}
	if code, data := call(t, srv, a.tokens[store.RoleOperator], "GET", "/api/clients", "", nil); code != 401 || !strings.Contains(string(data), "expired") {
		t.Fatalf("expired token: %d %s", code, data)
	}
	all, err := srv.Store.Audit(100000)
	if err != nil {
		t.Fatal(err)
	}
	var refusedTokens int
	for _, e := range all {
		if e.Status == 401 && e.Action == "GET /api/clients" {
			refusedTokens++
		}
	}
	if refusedTokens < 2 {
		t.Fatalf("the revoked and expired tokens' attempts are not audited (%d entries)", refusedTokens)
	}
}

// hashOf is what the store keeps of a token.
func hashOf(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}
