// Package api is the HTTP API of the server, in the shape of Leshan's demo
// server API where one exists: registered clients and operations on them,
// the security store, the event stream (SSE), the firmware repository,
// campaigns, and the bootstrap configurations. It sits over the server's
// parts (dm, firmware, campaign, bootstrap) and calls only what they
// export; none of them imports it.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// maxAPIBody bounds request bodies of the HTTP API.
const maxAPIBody = 1 << 20

// Config names the parts the API serves; a nil part has no routes (the
// bootstrap server alone has only its own).
type Config struct {
	// Token is the bearer token every request must carry (required).
	Token     string
	DM        *dm.Server
	Firmware  *firmware.Repository
	Campaigns *campaign.Engine
	Bootstrap *bootstrap.Server
	Events    *events.Broker // the SSE stream's source (default: DM's)
	// Store keeps device histories and the audit trail (nil: neither is
	// served nor written).
	Store interface {
		store.HistoryStore
		store.AuditStore
	}
	Logger *slog.Logger
}

// API is the HTTP API: an http.Handler with its bearer-token check.
type API struct {
	cfg Config
	dm  *dm.Server
	log *slog.Logger
	mux *http.ServeMux
}

// New makes the API over the parts in cfg.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Events == nil && cfg.DM != nil {
		cfg.Events = cfg.DM.Events()
	}
	a := &API{cfg: cfg, dm: cfg.DM, log: cfg.Logger, mux: http.NewServeMux()}
	if cfg.DM != nil {
		a.deviceRoutes()
	}
	if cfg.Firmware != nil {
		a.firmwareRoutes()
	}
	if cfg.Campaigns != nil {
		a.campaignRoutes()
	}
	if cfg.Bootstrap != nil {
		a.bootstrapRoutes()
	}
	if cfg.Store != nil {
		a.mux.HandleFunc("GET /api/audit", a.apiAudit)
	}
	return a
}

// ServeHTTP serves a request that carries the token. A request that may
// change something (any method but GET and HEAD) is written to the audit
// trail with its answer's status, refused or not.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if !a.authorized(r) {
			unauthorized(w)
			return
		}
		a.mux.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	actor := "api-token"
	if !a.authorized(r) {
		actor = "unauthenticated"
		unauthorized(sw)
	} else {
		a.mux.ServeHTTP(sw, r)
	}
	a.audit(store.AuditEntry{Time: time.Now().UTC(), Actor: actor, Action: r.Method + " " + r.URL.Path, Status: sw.status, Remote: r.RemoteAddr})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="fota"`)
	httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Flush passes through, for event streams.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *API) authorized(r *http.Request) bool {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == "" || tok == r.Header.Get("Authorization") {
		// EventSource in browsers cannot set headers.
		tok = r.URL.Query().Get("token")
	}
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.Token)) == 1
}

// deviceRoutes: registered clients, operations on them, the security
// store, the event stream.
func (a *API) deviceRoutes() {
	m := a.mux
	m.HandleFunc("GET /api/clients", a.apiClients)
	m.HandleFunc("GET /api/clients/{ep}", a.apiClient)
	m.HandleFunc("GET /api/clients/{ep}/{path...}", a.apiDevice)
	m.HandleFunc("PUT /api/clients/{ep}/{path...}", a.apiDevice)
	m.HandleFunc("POST /api/clients/{ep}/{path...}", a.apiDevice)
	m.HandleFunc("DELETE /api/clients/{ep}/{path...}", a.apiDevice)
	m.HandleFunc("GET /api/event", a.apiEvents)
	m.HandleFunc("GET /api/security/clients", a.apiSecurityList)
	m.HandleFunc("PUT /api/security/clients", a.apiSecurityPut)
	m.HandleFunc("DELETE /api/security/clients/{ep}", a.apiSecurityDelete)
	if a.cfg.Store != nil {
		m.HandleFunc("GET /api/clients/{ep}/history", a.apiHistory)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (a *API) apiClients(w http.ResponseWriter, r *http.Request) {
	out := []map[string]any{}
	for _, d := range a.dm.Devices() {
		out = append(out, dm.ClientJSON(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) apiClient(w http.ResponseWriter, r *http.Request) {
	d := a.dm.Device(r.PathValue("ep"))
	if d == nil {
		httpError(w, http.StatusNotFound, "no registered client "+strconv.Quote(r.PathValue("ep")))
		return
	}
	c := dm.ClientJSON(d)
	var obs []map[string]any
	for _, o := range a.dm.Observations(d.Endpoint()) {
		obs = append(obs, map[string]any{"paths": o.Paths, "composite": o.Composite})
	}
	c["observations"] = obs
	writeJSON(w, http.StatusOK, c)
}

// formatNamed maps ?format= values (Leshan's names or numbers) to content formats.
func formatNamed(s string) (lwm2m.ContentFormat, error) {
	switch strings.ToUpper(strings.ReplaceAll(s, "-", "_")) {
	case "TEXT", "PLAIN":
		return lwm2m.FormatText, nil
	case "OPAQUE":
		return lwm2m.FormatOpaque, nil
	case "CBOR":
		return lwm2m.FormatCBOR, nil
	case "TLV":
		return lwm2m.FormatTLV, nil
	case "JSON":
		return lwm2m.FormatLwM2MJSON, nil
	case "SENML_JSON":
		return lwm2m.FormatSenMLJSON, nil
	case "SENML_CBOR":
		return lwm2m.FormatSenMLCBOR, nil
	case "LWM2M_CBOR":
		return lwm2m.FormatLwM2MCBOR, nil
	case "LINK":
		return lwm2m.FormatLinkFormat, nil
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("unknown format %q", s)
	}
	return lwm2m.ContentFormat(n), nil
}

// mediaFormats maps HTTP content types of raw bodies to content formats.
var mediaFormats = map[string]lwm2m.ContentFormat{
	"text/plain": lwm2m.FormatText, "application/octet-stream": lwm2m.FormatOpaque,
	"application/cbor": lwm2m.FormatCBOR, "application/senml+json": lwm2m.FormatSenMLJSON,
	"application/senml+cbor": lwm2m.FormatSenMLCBOR, "application/vnd.oma.lwm2m+tlv": lwm2m.FormatTLV,
	"application/vnd.oma.lwm2m+json": lwm2m.FormatLwM2MJSON, "application/vnd.oma.lwm2m+cbor": lwm2m.FormatLwM2MCBOR,
}

// apiDevice serves GET/PUT/POST/DELETE /api/clients/{ep}/{path...}:
// read, write, execute or create, delete; and the suffixes /observe,
// /discover, /attributes; and the path "composite" (?paths=/3/0/1,/1/0/1).
func (a *API) apiDevice(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	if a.dm.Device(ep) == nil {
		httpError(w, http.StatusNotFound, "no registered client "+strconv.Quote(ep))
		return
	}
	rest := strings.Trim(r.PathValue("path"), "/")
	suffix := ""
	for _, sfx := range []string{"observe", "discover", "attributes"} {
		if rest == sfx || strings.HasSuffix(rest, "/"+sfx) {
			suffix = sfx
			rest = strings.TrimSuffix(strings.TrimSuffix(rest, sfx), "/")
			break
		}
	}
	q := r.URL.Query()
	ctx := r.Context()
	if t := q.Get("timeout"); t != "" {
		sec, err := strconv.ParseFloat(t, 64)
		if err != nil || sec <= 0 || sec > 600 {
			httpError(w, http.StatusBadRequest, "bad timeout "+strconv.Quote(t))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(sec*float64(time.Second)))
		defer cancel()
	}
	var accept *lwm2m.ContentFormat
	if f := q.Get("format"); f != "" {
		cf, err := formatNamed(f)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		accept = &cf
	}
	composite := rest == "composite"
	var paths []string
	path := "/" + rest
	if composite {
		for _, p := range strings.Split(q.Get("paths"), ",") {
			if p = strings.TrimSpace(p); p != "" {
				paths = append(paths, p)
			}
		}
		if len(paths) == 0 && r.Method != http.MethodPut {
			httpError(w, http.StatusBadRequest, "composite needs ?paths=/o/i/r,...")
			return
		}
	} else {
		lp, err := lwm2m.ParsePath(path)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("bad path %q: %v", path, err))
			return
		}
		path = lp.String()
		paths = []string{path}
	}
	best := a.dm.Device(ep).BestFormat()
	var resp *dm.Response
	var err error
	switch {
	case suffix == "observe" && r.Method == http.MethodPost:
		if composite {
			if accept == nil {
				accept = format(lwm2m.FormatSenMLJSON)
			}
			resp, err = a.dm.ObserveComposite(ctx, ep, paths, *accept)
		} else {
			resp, err = a.dm.Observe(ctx, ep, path, accept)
		}
	case suffix == "observe" && r.Method == http.MethodDelete:
		resp, err = a.dm.CancelObservation(ctx, ep, paths, composite)
		if errors.Is(err, dm.ErrNotObserved) {
			httpError(w, http.StatusNotFound, err.Error())
			return
		}
		if err != nil {
			// The observation is gone from our side; the device not
			// answering the cancel does not change that.
			writeJSON(w, http.StatusOK, map[string]any{"status": "CANCELLED", "success": true, "deviceError": err.Error()})
			return
		}
	case suffix == "discover" && r.Method == http.MethodGet:
		resp, err = a.dm.Discover(ctx, ep, path)
	case suffix == "attributes" && r.Method == http.MethodPut:
		var attrs []string
		for k, vs := range q {
			switch k {
			case "pmin", "pmax", "gt", "lt", "st", "epmin", "epmax", "edge", "con", "hqmax":
				for _, v := range vs {
					if v == "" {
						attrs = append(attrs, k)
					} else {
						attrs = append(attrs, k+"="+v)
					}
				}
			}
		}
		sort.Strings(attrs)
		resp, err = a.dm.WriteAttributes(ctx, ep, path, attrs)
	case suffix != "":
		httpError(w, http.StatusMethodNotAllowed, r.Method+" not allowed on /"+suffix)
		return
	case composite && r.Method == http.MethodGet:
		if accept == nil {
			accept = format(lwm2m.FormatSenMLJSON)
		}
		resp, err = a.dm.ReadComposite(ctx, ep, paths, *accept)
	case composite && r.Method == http.MethodPut:
		body, cf, berr := apiBody(r, "/", accept, lwm2m.FormatSenMLJSON)
		if berr != nil {
			httpError(w, http.StatusBadRequest, berr.Error())
			return
		}
		resp, err = a.dm.WriteComposite(ctx, ep, cf, body)
	case r.Method == http.MethodGet:
		if accept == nil && strings.Count(path, "/") < 3 {
			accept = &best // multi-value read: the device's best format
		}
		resp, err = a.dm.Read(ctx, ep, path, accept)
	case r.Method == http.MethodPut:
		body, cf, berr := apiBody(r, path, accept, best)
		if berr != nil {
			httpError(w, http.StatusBadRequest, berr.Error())
			return
		}
		replace := q.Get("replace") != "false"
		resp, err = a.dm.Write(ctx, ep, path, replace, cf, body)
	case r.Method == http.MethodPost && strings.Count(path, "/") == 3:
		args, rerr := io.ReadAll(io.LimitReader(r.Body, 4096))
		if rerr != nil {
			httpError(w, http.StatusBadRequest, rerr.Error())
			return
		}
		resp, err = a.dm.Execute(ctx, ep, path, string(args))
	case r.Method == http.MethodPost:
		body, cf, berr := apiBody(r, path, accept, best)
		if berr != nil {
			httpError(w, http.StatusBadRequest, berr.Error())
			return
		}
		resp, err = a.dm.Create(ctx, ep, path, cf, body)
	case r.Method == http.MethodDelete:
		resp, err = a.dm.Delete(ctx, ep, path)
	default:
		httpError(w, http.StatusMethodNotAllowed, r.Method)
		return
	}
	if err != nil {
		code := http.StatusBadGateway
		switch {
		case errors.Is(err, dm.ErrUnknownDevice):
			code = http.StatusNotFound
		case errors.Is(err, dm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			code = http.StatusGatewayTimeout
		case errors.Is(err, dm.ErrQueueFull), errors.Is(err, dm.ErrNoSession):
			code = http.StatusServiceUnavailable
		}
		a.log.Warn("api request to device failed", "endpoint", ep, "path", path, "method", r.Method, "err", err)
		httpError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, dm.ResponseJSON(resp, path))
}

// apiBody reads a write/create body for the node at base.
// application/json {"value": v} writes one resource as text/plain; a
// Leshan-style node ({"kind": "instance"|"singleResource"|"multiResource",
// ...}) is encoded in ?format= or the device's best format; {"format": f,
// "payload": base64} or a raw body with an LwM2M media type (or ?format=)
// goes as is.
func apiBody(r *http.Request, base string, format *lwm2m.ContentFormat, def lwm2m.ContentFormat) ([]byte, lwm2m.ContentFormat, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxAPIBody {
		return nil, 0, fmt.Errorf("body over %d bytes", maxAPIBody)
	}
	ct := strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0])
	if ct == "application/json" {
		var j struct {
			Value   any    `json:"value"`
			Format  string `json:"format"`
			Payload []byte `json:"payload"`
			Kind    string `json:"kind"`
		}
		if err := json.Unmarshal(body, &j); err != nil {
			return nil, 0, fmt.Errorf("json body: %w", err)
		}
		if j.Kind != "" {
			// A Leshan-style node: typed values encoded in the requested
			// format, else the device's best.
			var n apiNode
			if err := json.Unmarshal(body, &n); err != nil {
				return nil, 0, fmt.Errorf("json node: %w", err)
			}
			bp, err := lwm2m.ParsePath(base)
			if err != nil {
				return nil, 0, fmt.Errorf("path %q: %w", base, err)
			}
			entries, err := nodeEntries(bp, n)
			if err != nil {
				return nil, 0, fmt.Errorf("json node: %w", err)
			}
			cf := def
			if format != nil {
				cf = *format
			}
			data, err := lwm2m.Encode(cf, bp, entries)
			if err != nil {
				return nil, 0, fmt.Errorf("encode as %v: %w", cf, err)
			}
			return data, cf, nil
		}
		if j.Payload != nil {
			cf := def
			if j.Format != "" {
				if cf, err = formatNamed(j.Format); err != nil {
					return nil, 0, err
				}
			}
			return j.Payload, cf, nil
		}
		switch v := j.Value.(type) {
		case string:
			return []byte(v), lwm2m.FormatText, nil
		case bool:
			if v {
				return []byte("1"), lwm2m.FormatText, nil
			}
			return []byte("0"), lwm2m.FormatText, nil
		case float64:
			return []byte(strconv.FormatFloat(v, 'g', -1, 64)), lwm2m.FormatText, nil
		}
		return nil, 0, errors.New(`json body needs "value" (string, number, bool) or "payload" (base64)`)
	}
	if format != nil {
		return body, *format, nil
	}
	if cf, ok := mediaFormats[ct]; ok {
		return body, cf, nil
	}
	return body, def, nil
}

// apiEvents streams events as Server-Sent Events. ?ep= filters by endpoint.
func (a *API) apiEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ep := r.URL.Query().Get("ep")
	ch, cancel := a.cfg.Events.Subscribe(256)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, ": fota events\n\n")
	fl.Flush()
	keep := time.NewTicker(25 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			_, _ = io.WriteString(w, ": keep-alive\n\n")
			fl.Flush()
		case e, ok := <-ch:
			if !ok {
				return
			}
			if ep != "" && e.Endpoint != ep {
				continue
			}
			data, err := json.Marshal(e)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, data)
			fl.Flush()
		}
	}
}

// securityJSON is Leshan's security-info shape.
type securityJSON struct {
	Endpoint string `json:"endpoint"`
	TLS      struct {
		Mode    string `json:"mode"`
		Details struct {
			Identity string `json:"identity,omitempty"`
			Key      string `json:"key,omitempty"` // hex
		} `json:"details"`
	} `json:"tls"`
}

func toSecurityJSON(c store.Credential) securityJSON {
	var j securityJSON
	j.Endpoint = c.Endpoint
	j.TLS.Mode = c.Mode
	j.TLS.Details.Identity = c.Identity
	if len(c.Key) > 0 {
		j.TLS.Details.Key = hex.EncodeToString(c.Key)
	}
	return j
}

func (a *API) apiSecurityList(w http.ResponseWriter, r *http.Request) {
	cs, err := a.dm.Credentials()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []securityJSON{}
	for _, c := range cs {
		out = append(out, toSecurityJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) apiSecurityPut(w http.ResponseWriter, r *http.Request) {
	var j securityJSON
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	if err := dec.Decode(&j); err != nil {
		httpError(w, http.StatusBadRequest, "security info: "+err.Error())
		return
	}
	c := store.Credential{Endpoint: j.Endpoint, Mode: j.TLS.Mode}
	if !lwm2m.ValidEndpoint(c.Endpoint) {
		httpError(w, http.StatusBadRequest, "security info: endpoint missing or too long")
		return
	}
	switch c.Mode {
	case transport.SecurityPSK:
		key, err := hex.DecodeString(j.TLS.Details.Key)
		if err != nil || len(key) == 0 || len(key) > 64 {
			httpError(w, http.StatusBadRequest, "security info: psk key must be 1 to 64 bytes of hex")
			return
		}
		if j.TLS.Details.Identity == "" || len(j.TLS.Details.Identity) > 128 {
			httpError(w, http.StatusBadRequest, "security info: psk identity missing or too long")
			return
		}
		c.Identity, c.Key = j.TLS.Details.Identity, key
	case transport.SecurityX509:
		// The device's certificate must chain to the server's client CAs
		// and carry the endpoint as CN.
	default:
		httpError(w, http.StatusBadRequest, fmt.Sprintf("security info: mode %q (want psk or x509)", c.Mode))
		return
	}
	if err := a.dm.PutCredential(c); err != nil {
		httpError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, toSecurityJSON(c))
}

func (a *API) apiSecurityDelete(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	if err := a.dm.DeleteCredential(ep); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			httpError(w, http.StatusNotFound, "no security info for "+strconv.Quote(ep))
			return
		}
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// format is a pointer to f, for the optional formats of dm.Request.
func format(f lwm2m.ContentFormat) *lwm2m.ContentFormat { return &f }
