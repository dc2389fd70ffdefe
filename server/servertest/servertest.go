// Package servertest starts a real LwM2M server for tests, like
// net/http/httptest: plain CoAP, DTLS and the HTTP API on 127.0.0.1 with
// free ports and a bbolt file in a temporary directory.
package servertest

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/bolt"
)

// Token is the API token of test servers.
const Token = "test-token"

// Server is a running test server.
type Server struct {
	*server.Server
	Store  *bolt.Store
	DBPath string
	URL    string // http://127.0.0.1:port
	t      testing.TB
	cfg    server.Config
}

// Start starts a server with a fresh database; it is closed when the test
// ends. mod may adjust the configuration before the start.
func Start(t testing.TB, mod ...func(*server.Config)) *Server {
	t.Helper()
	return StartAt(t, filepath.Join(t.TempDir(), "fota.db"), mod...)
}

// StartAt starts a server on the database file path (which may hold the
// state of an earlier server: a restart).
func StartAt(t testing.TB, path string, mod ...func(*server.Config)) *Server {
	t.Helper()
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: st, HTTPAddr: "127.0.0.1:0", APIToken: Token, Config: dm.Config{CoAPAddr: "127.0.0.1:0", CoAPSAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	tw := &testWriter{t: t}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, m := range mod {
		m(&cfg)
	}
	srv, err := server.Start(cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	s := &Server{Server: srv, Store: st, DBPath: path, t: t, cfg: cfg}
	if a := srv.HTTPAddr(); a != nil {
		s.URL = "http://" + a.String()
	}
	t.Cleanup(func() {
		s.Stop()
		// Connection goroutines may still log a line after Stop; t.Log
		// panics once the test is over.
		tw.mu.Lock()
		tw.done = true
		tw.mu.Unlock()
	})
	return s
}

// Stop closes the server and its store; calling it twice is harmless.
func (s *Server) Stop() {
	if s.Store == nil {
		return
	}
	s.Close()
	s.Store.Close()
	s.Store = nil
}

// API performs an authenticated HTTP request against the API and decodes
// a JSON answer into out (if not nil). It returns the status code.
func (s *Server) API(method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// AddPSK stores PSK credentials for an endpoint.
func (s *Server) AddPSK(endpoint, identity string, key []byte) {
	s.t.Helper()
	if err := s.Store.PutCredential(store.Credential{Endpoint: endpoint, Mode: "psk", Identity: identity, Key: key}); err != nil {
		s.t.Fatal(err)
	}
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}
