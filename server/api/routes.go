package api

import (
	"net/http"
	"slices"
	"sync"
)

// routeMux is the API's http.ServeMux that also records every pattern
// registered on it, so the OpenAPI document can be checked against the
// routes actually served (TestOpenAPIDocumentsEveryRoute). Route files
// register with a.mux.HandleFunc as on a plain ServeMux and are recorded
// without doing anything more.
type routeMux struct {
	*http.ServeMux
	mu       sync.Mutex
	patterns []string
	// wrap, when set, wraps each handler as it is registered (API.guard:
	// the domain check of the records a route's path names).
	wrap func(pattern string, h http.Handler) http.Handler
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

// HandleFunc registers h for pattern ("METHOD /path") and records it.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Handle registers h for pattern ("METHOD /path") and records it.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	if m.wrap != nil {
		h = m.wrap(pattern, h)
	}
	m.ServeMux.Handle(pattern, h)
	m.mu.Lock()
	m.patterns = append(m.patterns, pattern)
	m.mu.Unlock()
}

// Routes returns the patterns registered on the API ("GET /api/clients",
// ...), sorted.
func (a *API) Routes() []string {
	a.mux.mu.Lock()
	defer a.mux.mu.Unlock()
	out := slices.Clone(a.mux.patterns)
	slices.Sort(out)
	return out
}

// serveUnrouted answers a request no pattern matches. ServeMux would send
// text/plain "404 page not found" or a 405; the API answers every error
// as a problem, keeping the Allow header ServeMux computes for a 405.
func (a *API) serveUnrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if allow := rec.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	switch rec.code {
	case http.StatusMethodNotAllowed:
		httpError(w, rec.code, r.Method+" is not served on "+r.URL.Path+": use "+rec.header.Get("Allow")+" (GET /api/openapi.json lists every route)")
	case http.StatusNotFound, 0:
		httpError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path+": GET /api/openapi.json lists every route")
	default:
		// A redirect (a path that needs cleaning): let ServeMux answer.
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
	}
}

// statusRecorder keeps the status and header of an answer and drops its
// body.
type statusRecorder struct {
	header http.Header
	code   int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
}
