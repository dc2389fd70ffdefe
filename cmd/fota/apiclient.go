package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// apiClient is a small client of the server's HTTP API.
type apiClient struct {
	base, token string
	hc          *http.Client
}

// do sends body as JSON and returns the answer's body; a non-2xx answer is
// an error carrying the server's message.
func (a apiClient) do(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &apiError{method: method, path: path, status: resp.StatusCode, statusText: resp.Status, msg: apiErrorMessage(data)}
	}
	return data, nil
}

// apiError is a non-2xx answer of the API.
type apiError struct {
	method, path string
	status       int
	statusText   string // "404 Not Found"
	msg          string // the server's message
}

func (e *apiError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("%s %s: %s", e.method, e.path, e.statusText)
	}
	return fmt.Sprintf("%s %s: %s: %s", e.method, e.path, e.statusText, e.msg)
}

// apiErrorMessage is the person-readable part of an error body: the
// "detail" (and "title") of an RFC 9457 problem, the "error" of the
// API's older {"error": ...} shape, else the body as text.
func apiErrorMessage(body []byte) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Error  string `json:"error"`
	}
	if json.Unmarshal(body, &p) == nil {
		switch {
		case p.Detail != "" && p.Title != "" && !strings.Contains(p.Detail, p.Title):
			return p.Title + ": " + p.Detail
		case p.Detail != "":
			return p.Detail
		case p.Error != "":
			return p.Error
		case p.Title != "":
			return p.Title
		}
	}
	return strings.TrimSpace(string(body))
}

// apiFlags adds --url (default $FOTA_URL, like kubectl's context) and the
// token flags to fs; the returned function makes the API client after
// parsing.
func apiFlags(fs *flag.FlagSet) func() (apiClient, error) {
	u := fs.String("url", "", "server HTTP API `URL` (default $FOTA_URL): http://127.0.0.1:8080 or https://HOST:8443")
	tok := tokenFlags(fs)
	caFile := fs.String("tls-ca", "", "https: CA certificate `file` (PEM) the API's certificate chains to (default $FOTA_TLS_CA)")
	pin := fs.String("tls-pin", "", "https: the API certificate's SHA-256 `fingerprint` the server printed, for its self-signed certificate (default $FOTA_TLS_PIN)")
	return func() (apiClient, error) {
		base := *u
		if base == "" {
			base = os.Getenv("FOTA_URL")
		}
		if base == "" {
			return apiClient{}, &exitError{2, errors.New("--url or FOTA_URL is required")}
		}
		t, err := tok()
		if err != nil {
			return apiClient{}, err
		}
		if *caFile == "" {
			*caFile = os.Getenv("FOTA_TLS_CA")
		}
		if *pin == "" {
			*pin = os.Getenv("FOTA_TLS_PIN")
		}
		hc := &http.Client{Timeout: 2 * time.Minute}
		if *caFile != "" || *pin != "" {
			tc, err := clientTLS(*caFile, *pin)
			if err != nil {
				return apiClient{}, &exitError{2, err}
			}
			hc.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
		}
		return apiClient{base: strings.TrimRight(base, "/"), token: t, hc: hc}, nil
	}
}

// stream opens an event stream of the API. The client's own timeout would
// cut a long stream, so the request has none but ctx.
func (a apiClient) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if a.token != "" {
		// The header, not ?token=: a URL ends up in proxy and access logs.
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	hc := *a.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, &apiError{method: "GET", path: path, status: resp.StatusCode, statusText: resp.Status, msg: apiErrorMessage(body)}
	}
	return resp.Body, nil
}
