package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var httpsListening = regexp.MustCompile(`msg="https api listening" addr=(\S+)`)
var httpsFingerprint = regexp.MustCompile(`SHA-256 fingerprint ([0-9a-f]{64})`)

// The API over HTTPS with a self-signed certificate made on the first
// start: the CLI trusts it by its printed fingerprint and refuses another;
// the operator's token creates a domain whose administrator makes a
// viewer's token, and the viewer cannot make tokens. A restart keeps the
// certificate. Plain HTTP beyond loopback is refused unless insisted on.
func TestServerHTTPSAndDomainsCLI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "f.db")
	const root = "root-token-7a1c"
	args := []string{"server", "--db", db, "--coap", "", "--coaps", "127.0.0.1:0", "--http", "", "--https", "127.0.0.1:0"}
	srv := startFota(t, []string{"FOTA_API_TOKEN=" + root}, args...)
	fp := srv.waitLine(t, httpsFingerprint, 20*time.Second)[1]
	addr := srv.waitLine(t, httpsListening, 20*time.Second)[1]
	url := "https://" + addr
	env := func(tok string, extra ...string) []string {
		return append([]string{"FOTA_URL=" + url, "FOTA_API_TOKEN=" + tok}, extra...)
	}

	r := runFota(t, 30*time.Second, env(root, "FOTA_TLS_PIN="+fp), "domain", "create", "water", "--json")
	var d struct{ Name, AdminToken string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &d) != nil || d.Name != "water" || !strings.HasPrefix(d.AdminToken, "fota_") {
		t.Fatalf("domain create over https: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runFota(t, 30*time.Second, env(d.AdminToken), "token", "create", "--role", "viewer", "--expires", "1h", "--json", "--tls-pin", fp)
	var tok struct{ Token, Role, Domain string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tok) != nil || tok.Role != "viewer" || tok.Domain != "water" || tok.Token == "" {
		t.Fatalf("token create: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runFota(t, 30*time.Second, env(tok.Token, "FOTA_TLS_PIN="+fp), "token", "create", "--role", "viewer")
	if r.code == 0 || !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, "administrator") {
		t.Fatalf("a viewer makes a token: %d %q", r.code, r.stderr)
	}
	wrong := strings.Repeat("0", 64)
	r = runFota(t, 30*time.Second, env(root, "FOTA_TLS_PIN="+wrong), "domain", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "not the pinned") {
		t.Fatalf("a wrong pin: %d %q", r.code, r.stderr)
	}
	r = runFota(t, 30*time.Second, env(root), "domain", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("an untrusted self-signed certificate: %d %q", r.code, r.stderr)
	}
	srv.stop(t)
	if strings.Contains(srv.stderr(), root) || strings.Contains(srv.stderr(), d.AdminToken) {
		t.Fatal("the server logged a token")
	}

	again := startFota(t, []string{"FOTA_API_TOKEN=" + root}, args...)
	if fp2 := again.waitLine(t, httpsFingerprint, 20*time.Second)[1]; fp2 != fp {
		t.Fatalf("restart: a new certificate (%s, was %s)", fp2, fp)
	}
	again.stop(t)

	r = runFota(t, 30*time.Second, []string{"FOTA_API_TOKEN=" + root}, "server", "--db", db, "--coap", "", "--coaps", "", "--http", "0.0.0.0:0")
	if r.code == 0 || !strings.Contains(r.stderr, "--http-insecure") {
		t.Fatalf("plain HTTP on all interfaces: %d %q", r.code, r.stderr)
	}
}
