// Package api is the HTTP API of the server, in the shape of Leshan's demo
// server API where one exists: registered clients and operations on them,
// the security store, the event stream (SSE), the firmware repository,
// campaigns, and the bootstrap configurations. It sits over the server's
// parts (dm, firmware, campaign, bootstrap) and calls only what they
// export; none of them imports it.
package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
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
	"github.com/fotastack/fota/server/software"
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
	Software  *software.Manager
	Bootstrap *bootstrap.Server
	Events    *events.Broker // the SSE stream's source (default: DM's)
	// Store keeps device histories and the audit trail (nil: neither is
	// served nor written).
	Store interface {
		store.HistoryStore
		store.AuditStore
	}
	// Domains keeps domains, their tokens and who owns which record (nil:
	// one domain, the operator's token only, as before domains).
	Domains store.DomainStore
	Logger  *slog.Logger
}

// API is the HTTP API: an http.Handler with its bearer-token check.
type API struct {
	cfg Config
	dm  *dm.Server
	log *slog.Logger
	mux *routeMux
	// openapi is the OpenAPI document of the routes served (openapi.go).
	openapi []byte
	// roles and claims: each route's Role and Claims from operations.go,
	// the one table that documents and enforces them.
	roles  map[string]string
	claims map[string]bool
}

// New makes the API over the parts in cfg.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Events == nil && cfg.DM != nil {
		cfg.Events = cfg.DM.Events()
	}
	a := &API{cfg: cfg, dm: cfg.DM, log: cfg.Logger, mux: newRouteMux(), roles: map[string]string{}, claims: map[string]bool{}}
	a.mux.wrap = a.guard
	// Each part's routes and their documentation (operations.go) together:
	// the OpenAPI document lists what this API serves, no more.
	s := newSchemas()
	ops := apiOps(s)
	a.mux.HandleFunc("GET /api/openapi.json", a.apiOpenAPI)
	if cfg.DM != nil {
		a.deviceRoutes()
		ops = append(ops, deviceOps(s)...)
	}
	if cfg.Firmware != nil {
		a.firmwareRoutes()
		ops = append(ops, firmwareOps(s)...)
	}
	if cfg.Campaigns != nil {
		a.campaignRoutes()
		ops = append(ops, campaignOps(s)...)
	}
	if cfg.Software != nil && cfg.DM != nil {
		a.appRoutes()
		ops = append(ops, appOps(s)...)
	}
	if cfg.Bootstrap != nil {
		a.bootstrapRoutes()
		ops = append(ops, bootstrapOps(s)...)
	}
	if cfg.Store != nil {
		a.mux.HandleFunc("GET /api/audit", a.apiAudit)
		ao := auditOps(s)
		if cfg.DM == nil {
			ao = ao[:1] // no device history without device management
		}
		ops = append(ops, ao...)
	}
	if cfg.Domains != nil {
		a.domainRoutes()
		ops = append(ops, domainOps(s)...)
	}
	for _, op := range ops {
		a.roles[op.Route] = roleOf(op)
		a.claims[op.Route] = op.Claims
	}
	doc, err := buildOpenAPI(s, ops)
	if err != nil {
		// Only a value json cannot encode gets here: a bug in operations.go.
		panic("api: OpenAPI document: " + err.Error())
	}
	a.openapi = doc
	return a
}

// ServeHTTP serves a request that carries a valid token whose role the
// route allows (operations.go), acting in the token's domain. A request
// that may change something (any method but GET and HEAD) is written to
// the audit trail with its answer's status, refused or not; so is every
// request that presents a domain's token, read or not, and every refused
// token: who read what in a domain is the domain's business.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, why := a.authenticate(r)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	actor, domain := "unauthenticated", ""
	if p != nil {
		actor, domain = p.Actor, p.Domain
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if !read || (p != nil && !p.Root) || (p == nil && bearer(r) != "") {
		defer func() {
			a.audit(store.AuditEntry{Time: time.Now().UTC(), Actor: actor, Action: r.Method + " " + r.URL.Path, Status: sw.status, Remote: r.RemoteAddr, Domain: domain})
		}()
	}
	if p == nil {
		unauthorized(sw, why)
		return
	}
	h, pattern := a.mux.Handler(r)
	if pattern == "" {
		a.serveUnrouted(sw, r, h)
		return
	}
	if need := a.roles[pattern]; !p.may(need) {
		httpError(sw, http.StatusForbidden, fmt.Sprintf("%s %s needs the role %s; this token is %s in domain %s: ask the domain's administrator for a token with that role",
			r.Method, r.URL.Path, need, p.Role, p.Domain))
		return
	}
	a.mux.ServeHTTP(sw, withPrincipal(r, p))
}

func unauthorized(w http.ResponseWriter, why string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="fota"`)
	httpError(w, http.StatusUnauthorized, why+": send the header \"Authorization: Bearer TOKEN\" (or ?token= for EventSource) with the operator's token (the one the server printed on its first start or was given in FOTA_API_TOKEN) or a token a domain's administrator made")
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

// apiClients serves GET /api/clients: every registration as an array
// (Leshan's shape, what its tools and ours read), or, when the query has
// any of limit, after, q, security or queue, one page of them as a
// ClientPage: read from the store's endpoint index, so a fleet of 100,000
// is paged without being loaded or sorted per request.
func (a *API) apiClients(w http.ResponseWriter, r *http.Request) {
	mine, err := a.ownedBy(principalOf(r), store.OwnEndpoint)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "read the domains of endpoints: "+err.Error())
		return
	}
	qv := r.URL.Query()
	paged := false
	for _, k := range []string{"limit", "after", "q", "security", "queue"} {
		paged = paged || qv.Has(k)
	}
	if !paged {
		out := []map[string]any{}
		for _, d := range a.dm.Devices() {
			if mine(d.Endpoint()) {
				out = append(out, dm.ClientJSON(d))
			}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	q := store.RegistrationQuery{After: qv.Get("after"), Limit: defaultPage, Search: qv.Get("q"), Security: qv.Get("security")}
	if v := qv.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxPage {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: give a page size from 1 to %d", v, store.MaxPage))
			return
		}
		q.Limit = n
	}
	switch q.Security {
	case "", transport.SecurityNone, transport.SecurityPSK, transport.SecurityX509:
	default:
		httpError(w, http.StatusBadRequest, fmt.Sprintf("security %q: give none, psk or x509", q.Security))
		return
	}
	if v := qv.Get("queue"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("queue %q: give true or false", v))
			return
		}
		q.Queue = &b
	}
	devs, next, err := a.dm.DevicePage(q)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "read a page of registrations: "+err.Error())
		return
	}
	// Another domain's devices are left out of the page (it may then hold
	// fewer than limit; the cursor stays valid) and out of the count, so
	// neither their names nor their number leak.
	page := clientPage{Clients: []map[string]any{}, Next: next}
	for _, d := range devs {
		if mine(d.Endpoint()) {
			page.Clients = append(page.Clients, dm.ClientJSON(d))
		}
	}
	for _, d := range a.dm.Devices() {
		if mine(d.Endpoint()) {
			page.Registered++
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// defaultPage is the page size of GET /api/clients?after= without limit.
const defaultPage = 100

// clientPage is one page of GET /api/clients.
type clientPage struct {
	Clients []map[string]any `json:"clients"`
	// Next is the cursor of the next page (?after=), "" after the last.
	Next string `json:"next"`
	// Registered counts every registered device, filters aside.
	Registered int `json:"registered"`
}

func (a *API) apiClient(w http.ResponseWriter, r *http.Request) {
	d := a.dm.Device(r.PathValue("ep"))
	if d == nil {
		unknownClient(w, r.PathValue("ep"))
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
		unknownClient(w, ep)
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
			httpError(w, http.StatusBadRequest, "bad ?timeout="+strconv.Quote(t)+": give the seconds to wait for the device, more than 0 and at most 600")
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
			httpError(w, http.StatusBadRequest, "composite needs the paths to "+r.Method+": add ?paths=/3/0/1,/1/0/1")
			return
		}
	} else {
		lp, err := lwm2m.ParsePath(path)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("bad LwM2M path %q (%v): give /object[/instance[/resource[/instance]]] with numeric IDs, optionally followed by /observe, /discover or /attributes", path, err))
			return
		}
		path = lp.String()
		paths = []string{path}
	}
	dev := a.dm.Device(ep)
	best := dev.BestFormat()
	// The device's error answers name the LwM2M operation, as its log does.
	var op string
	var resp *dm.Response
	var err error
	switch {
	case suffix == "observe" && r.Method == http.MethodPost:
		op = "Observe"
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
			httpError(w, http.StatusNotFound, err.Error()+": GET /api/clients/"+ep+" lists its observations")
			return
		}
		if err == nil && !resp.Success() {
			err = fmt.Errorf("device answered %s %s", dotted(resp.Code), dm.CodeName(resp.Code))
		}
		if err != nil {
			// The observation is gone from our side; the device not
			// answering the cancel, or refusing it, does not change that.
			writeJSON(w, http.StatusOK, map[string]any{"status": "CANCELLED", "success": true, "deviceError": err.Error()})
			return
		}
	case suffix == "discover" && r.Method == http.MethodGet:
		op = "Discover"
		resp, err = a.dm.Discover(ctx, ep, path)
	case suffix == "attributes" && r.Method == http.MethodPut:
		op = "Write-Attributes"
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
		allow := map[string]string{"observe": "POST, DELETE", "discover": "GET", "attributes": "PUT"}[suffix]
		w.Header().Set("Allow", allow)
		httpError(w, http.StatusMethodNotAllowed, r.Method+" is not served on .../"+suffix+": use "+allow)
		return
	case composite && r.Method == http.MethodGet:
		op = "Read-Composite"
		if accept == nil {
			accept = format(lwm2m.FormatSenMLJSON)
		}
		resp, err = a.dm.ReadComposite(ctx, ep, paths, *accept)
	case composite && r.Method == http.MethodPut:
		op = "Write-Composite"
		body, cf, ok := a.deviceBody(w, r, dev, "/", accept, lwm2m.FormatSenMLJSON)
		if !ok {
			return
		}
		resp, err = a.dm.WriteComposite(ctx, ep, cf, body)
	case r.Method == http.MethodGet:
		op = "Read"
		if accept == nil && strings.Count(path, "/") < 3 {
			accept = &best // multi-value read: the device's best format
		}
		resp, err = a.dm.Read(ctx, ep, path, accept)
	case r.Method == http.MethodPut:
		op = "Write"
		body, cf, ok := a.deviceBody(w, r, dev, path, accept, best)
		if !ok {
			return
		}
		replace := q.Get("replace") != "false"
		resp, err = a.dm.Write(ctx, ep, path, replace, cf, body)
	case r.Method == http.MethodPost && strings.Count(path, "/") == 3:
		op = "Execute"
		args, rerr := io.ReadAll(io.LimitReader(r.Body, 4096))
		if rerr != nil {
			httpError(w, http.StatusBadRequest, rerr.Error())
			return
		}
		resp, err = a.dm.Execute(ctx, ep, path, string(args))
	case r.Method == http.MethodPost:
		op = "Create"
		body, cf, ok := a.deviceBody(w, r, dev, path, accept, best)
		if !ok {
			return
		}
		resp, err = a.dm.Create(ctx, ep, path, cf, body)
	case r.Method == http.MethodDelete:
		op = "Delete"
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
		httpError(w, code, deviceFailure(ep, op, code, err))
		return
	}
	if c := resp.Code >> 5; c == 4 || c == 5 {
		target := path
		if composite {
			target = strings.Join(paths, ",")
		}
		deviceProblem(w, ep, op, target, resp)
		return
	}
	writeJSON(w, http.StatusOK, dm.ResponseJSON(resp, path))
}

// errMediaType marks a body the API cannot pass to a device as it is: no
// Content-Type, or one that is neither application/json nor the media type
// of an LwM2M content format (415).
var errMediaType = errors.New("unsupported media type")

// mediaTypeOf is the HTTP media type of content format f, for messages and
// the Accept header of a 415.
func mediaTypeOf(f lwm2m.ContentFormat) string {
	for mt, cf := range mediaFormats {
		if cf == f {
			return mt
		}
	}
	return f.String()
}

// apiBody reads a write/create body for the node at base.
// application/json {"value": v} writes one resource as text/plain; a
// Leshan-style node ({"kind": "instance"|"singleResource"|"multiResource",
// ...}) is encoded in ?format= or the device's best format. raw is true
// when the bytes go to the device as the caller sent them: a body with an
// LwM2M media type, or {"format": f, "payload": base64}; the caller must
// then check that the device takes the format. An empty body needs no
// Content-Type (an instance POST without body is a partial update).
func apiBody(r *http.Request, base string, format *lwm2m.ContentFormat, def lwm2m.ContentFormat) (body []byte, cf lwm2m.ContentFormat, raw bool, err error) {
	body, err = io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil {
		return nil, 0, false, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxAPIBody {
		return nil, 0, false, fmt.Errorf("body over %d bytes: send large payloads (firmware) through /api/firmware and a campaign", maxAPIBody)
	}
	cf = def
	if format != nil {
		cf = *format
	}
	header := r.Header.Get("Content-Type")
	if len(body) == 0 && header == "" {
		return body, cf, false, nil
	}
	ct, _, perr := mime.ParseMediaType(header)
	switch {
	case header == "":
		// Guessing would send the device bytes it misreads (a JSON
		// document as SenML CBOR): the caller must say what it sends.
		return nil, 0, false, fmt.Errorf("%w: the body has no Content-Type: send application/json ({\"value\": v} or a node) or the media type of the body's LwM2M format", errMediaType)
	case perr != nil:
		return nil, 0, false, fmt.Errorf("%w: Content-Type %q does not parse (%v)", errMediaType, header, perr)
	case ct == "application/json":
		return jsonBody(body, base, cf)
	}
	rf, ok := mediaFormats[ct]
	if !ok {
		return nil, 0, false, fmt.Errorf("%w: Content-Type %q is no LwM2M content format: send application/json or one of the formats the device takes", errMediaType, ct)
	}
	if format != nil && *format != rf {
		return nil, 0, false, fmt.Errorf("?format=%v and Content-Type %s disagree: for a raw body the Content-Type names its format; drop ?format=", *format, ct)
	}
	return body, rf, true, nil
}

// jsonBody reads an application/json write/create body: a value, a node
// encoded in cf, or a payload in a named format.
func jsonBody(body []byte, base string, cf lwm2m.ContentFormat) ([]byte, lwm2m.ContentFormat, bool, error) {
	var j struct {
		Value   any    `json:"value"`
		Format  string `json:"format"`
		Payload []byte `json:"payload"`
		Kind    string `json:"kind"`
	}
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, 0, false, fmt.Errorf("json body: %w", err)
	}
	if j.Kind != "" {
		// A Leshan-style node: typed values encoded in the requested
		// format, else the device's best.
		var n apiNode
		if err := json.Unmarshal(body, &n); err != nil {
			return nil, 0, false, fmt.Errorf("json node: %w", err)
		}
		bp, err := lwm2m.ParsePath(base)
		if err != nil {
			return nil, 0, false, fmt.Errorf("path %q: %w", base, err)
		}
		entries, err := nodeEntries(bp, n)
		if err != nil {
			return nil, 0, false, fmt.Errorf("json node: %w", err)
		}
		data, err := lwm2m.Encode(cf, bp, entries)
		if err != nil {
			return nil, 0, false, fmt.Errorf("encode as %v: %w", cf, err)
		}
		return data, cf, false, nil
	}
	if j.Payload != nil {
		if j.Format != "" {
			f, err := formatNamed(j.Format)
			if err != nil {
				return nil, 0, false, err
			}
			cf = f
		}
		return j.Payload, cf, true, nil
	}
	switch v := j.Value.(type) {
	case string:
		return []byte(v), lwm2m.FormatText, false, nil
	case bool:
		if v {
			return []byte("1"), lwm2m.FormatText, false, nil
		}
		return []byte("0"), lwm2m.FormatText, false, nil
	case float64:
		return []byte(strconv.FormatFloat(v, 'g', -1, 64)), lwm2m.FormatText, false, nil
	}
	return nil, 0, false, errors.New(`json body needs "value" (string, number, bool), "kind" (a node) or "payload" (base64)`)
}

// deviceBody reads the body of a Write, Create or Write-Composite to dev at
// base and checks that the device takes its format, answering with a
// problem (and ok false) if not: a refusal here costs the device nothing,
// while a body it cannot read costs it a round trip and an error it may
// only log.
func (a *API) deviceBody(w http.ResponseWriter, r *http.Request, dev *dm.Device, base string, format *lwm2m.ContentFormat, def lwm2m.ContentFormat) ([]byte, lwm2m.ContentFormat, bool) {
	bp, err := lwm2m.ParsePath(base)
	if err != nil {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("bad LwM2M path %q: %v", base, err))
		return nil, 0, false
	}
	var takes []string
	for _, f := range []lwm2m.ContentFormat{lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR, lwm2m.FormatSenMLCBOR,
		lwm2m.FormatSenMLJSON, lwm2m.FormatTLV, lwm2m.FormatLwM2MCBOR, lwm2m.FormatLwM2MJSON} {
		if dev.Accepts(f, bp) {
			takes = append(takes, mediaTypeOf(f))
		}
	}
	refuse := func(detail string) {
		// RFC 9110 12.5.1: Accept in a 415 names the media types that
		// would have been taken.
		w.Header().Set("Accept", strings.Join(append([]string{"application/json"}, takes...), ", "))
		writeProblem(w, Problem{Type: ProblemContentFormat, Title: "Content format not taken by the device",
			Status: http.StatusUnsupportedMediaType, Detail: detail, Path: bp.String(), Formats: takes})
	}
	body, cf, raw, err := apiBody(r, base, format, def)
	if errors.Is(err, errMediaType) {
		refuse(strings.TrimPrefix(err.Error(), errMediaType.Error()+": "))
		return nil, 0, false
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return nil, 0, false
	}
	if raw && !dev.Accepts(cf, bp) {
		refuse(fmt.Sprintf("device %s did not announce %s (%s) in its registration, and it is not mandatory for %s: send one of %s, or application/json to let the server encode the values",
			quote(dev.Endpoint()), cf, mediaTypeOf(cf), bp, strings.Join(takes, ", ")))
		return nil, 0, false
	}
	return body, cf, true
}

// unknownClient answers a request for an endpoint that is not registered.
func unknownClient(w http.ResponseWriter, ep string) {
	httpError(w, http.StatusNotFound, "no registered client "+quote(ep)+": check the endpoint name (GET /api/clients lists them) or wait until it registers")
}

// deviceFailure is the message of a request to device ep that got no
// answer to use: what happened and what to do (code is the HTTP status).
func deviceFailure(ep, op string, code int, err error) string {
	msg := op + " on device " + quote(ep) + " failed: " + err.Error()
	switch code {
	case http.StatusNotFound:
		return msg + ": it is no longer registered; wait until it registers again"
	case http.StatusGatewayTimeout:
		return msg + ": the device did not answer in time; check that it is up, or give it longer with ?timeout=SECONDS"
	case http.StatusServiceUnavailable:
		return msg + ": try again after the device's next Update"
	}
	return msg
}

// apiEvents streams events as Server-Sent Events. ?ep= filters by endpoint.
func (a *API) apiEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ep := r.URL.Query().Get("ep")
	p := principalOf(r)
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
			if ep != "" && e.Endpoint != ep || !a.eventVisible(p, e) {
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
	mine, err := a.ownedBy(principalOf(r), store.OwnEndpoint)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "read the domains of endpoints: "+err.Error())
		return
	}
	out := []securityJSON{}
	for _, c := range cs {
		if mine(c.Endpoint) {
			out = append(out, toSecurityJSON(c))
		}
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
	p := principalOf(r)
	if !a.claim(w, p, store.OwnEndpoint, c.Endpoint) {
		return
	}
	if err := a.dm.PutCredential(c); err != nil {
		msg := err.Error()
		if p.Domain != store.DefaultDomain {
			// The store's error names the endpoint holding the identity,
			// which may be another domain's.
			msg = fmt.Sprintf("psk identity %q is taken by another endpoint: choose another", c.Identity)
		}
		httpError(w, http.StatusConflict, msg)
		return
	}
	writeJSON(w, http.StatusOK, toSecurityJSON(c))
}

func (a *API) apiSecurityDelete(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	answerDelete(w, a.dm.DeleteCredential(ep), "security info", ep)
}

// format is a pointer to f, for the optional formats of dm.Request.
func format(f lwm2m.ContentFormat) *lwm2m.ContentFormat { return &f }
