package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/api"
	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/servertest"
)

var (
	wildcard    = regexp.MustCompile(`\{([a-zA-Z_]+)\.\.\.\}`)
	templateVar = regexp.MustCompile(`\{([a-zA-Z_]+)\}`)
	httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
)

// documentedRoutes are the "method /path" pairs of an OpenAPI document.
func documentedRoutes(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatalf("no paths in the document")
	}
	var out []string
	for p, item := range paths {
		for m, op := range item.(map[string]any) {
			if !slices.Contains(httpMethods, m) {
				continue
			}
			out = append(out, m+" "+p)
			o := op.(map[string]any)
			if o["summary"] == nil || o["responses"] == nil {
				t.Errorf("%s %s: no summary or responses", m, p)
			}
			// Every variable of the template is a declared path parameter.
			var declared []string
			params, _ := o["parameters"].([]any)
			for _, x := range params {
				if pm := x.(map[string]any); pm["in"] == "path" && pm["required"] == true {
					declared = append(declared, pm["name"].(string))
				}
			}
			for _, v := range templateVar.FindAllStringSubmatch(p, -1) {
				if !slices.Contains(declared, v[1]) {
					t.Errorf("%s %s: path parameter %q not declared", m, p, v[1])
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// servedRoutes are the API's registered patterns as OpenAPI "method
// /path" pairs: {path...} is {path}.
func servedRoutes(a *api.API) []string {
	var out []string
	for _, r := range a.Routes() {
		m, p, _ := strings.Cut(r, " ")
		out = append(out, strings.ToLower(m)+" "+wildcard.ReplaceAllString(p, "{$1}"))
	}
	slices.Sort(out)
	return out
}

// compareRoutes fails for every route served and not documented, and
// every route documented and not served.
func compareRoutes(t *testing.T, what string, served, documented []string) {
	t.Helper()
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s: route %q is served but not in the OpenAPI document (add it to server/api/operations.go)", what, r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("%s: route %q is in the OpenAPI document but not served", what, r)
		}
	}
}

// checkRefs fails for every $ref of doc that does not resolve.
func checkRefs(t *testing.T, doc map[string]any) {
	t.Helper()
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				name, found := strings.CutPrefix(r, "#/components/schemas/")
				if _, ok := schemas[name]; !found || !ok {
					t.Errorf("$ref %q does not resolve", r)
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(doc)
}

// GET /api/openapi.json is an OpenAPI 3 document of exactly the routes the
// API serves: every pattern registered on its mux is documented and every
// documented route is registered; its path parameters are declared and
// its schema references resolve. An API of the bootstrap server alone
// (fota bootstrap) documents only its routes.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) {
		c.Bootstrap = bootstrap.Options{CoAPAddr: "127.0.0.1:0", CoAPSAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	})
	if a := apiDo(t, srv, "GET", "/api/openapi.json", "", "", false); a.code != http.StatusUnauthorized {
		t.Fatalf("openapi.json without the token: HTTP %d, want 401 like every route", a.code)
	}
	a := apiDo(t, srv, "GET", "/api/openapi.json", "", "", true)
	if a.code != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi.json: HTTP %d %q", a.code, a.header.Get("Content-Type"))
	}
	doc := a.body
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi = %v, want 3.x", doc["openapi"])
	}
	served := servedRoutes(srv.Server.API)
	for _, r := range []string{"get /api/openapi.json", "get /api/clients", "put /api/clients/{ep}/{path}", "post /api/firmware",
		"post /api/campaigns", "get /api/bootstrap/{ep}"} {
		if !slices.Contains(served, r) {
			t.Fatalf("the mux did not record %q (recorded: %v)", r, served)
		}
	}
	compareRoutes(t, "DM server", served, documentedRoutes(t, doc))
	checkRefs(t, doc)
	if _, ok := doc["components"].(map[string]any)["schemas"].(map[string]any)["Problem"]; !ok {
		t.Fatal("no Problem schema")
	}

	bs := api.New(api.Config{Token: "bs-token", Bootstrap: srv.Bootstrap})
	req := httptest.NewRequest("GET", "/api/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer bs-token")
	rec := httptest.NewRecorder()
	bs.ServeHTTP(rec, req)
	var bsDoc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &bsDoc); err != nil {
		t.Fatalf("bootstrap API's document: HTTP %d: %v", rec.Code, err)
	}
	bsServed := servedRoutes(bs)
	if slices.Contains(bsServed, "get /api/clients") || !slices.Contains(bsServed, "get /api/bootstrap") {
		t.Fatalf("bootstrap API serves %v", bsServed)
	}
	compareRoutes(t, "bootstrap server", bsServed, documentedRoutes(t, bsDoc))
	checkRefs(t, bsDoc)
}
