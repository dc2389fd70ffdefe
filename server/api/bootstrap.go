package api

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/bootstrap"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// bootstrapRoutes: the bootstrap server's configurations and credentials
// (behind the token):
//
//	GET    /api/bootstrap                        all configurations
//	GET    /api/bootstrap/{ep}                   one configuration and its last outcome
//	PUT    /api/bootstrap/{ep}                   store a configuration (generatePsk resolved here)
//	DELETE /api/bootstrap/{ep}
//	GET    /api/bootstrap/security/clients       bootstrap credentials (keys left out)
//	PUT    /api/bootstrap/security/clients       store one, Leshan's security-info shape
//	DELETE /api/bootstrap/security/clients/{ep}
func (a *API) bootstrapRoutes() {
	m := a.mux
	m.HandleFunc("GET /api/bootstrap", a.bsAPIList)
	m.HandleFunc("GET /api/bootstrap/{ep}", a.bsAPIGet)
	m.HandleFunc("PUT /api/bootstrap/{ep}", a.bsAPIPut)
	m.HandleFunc("DELETE /api/bootstrap/{ep}", a.bsAPIDelete)
	m.HandleFunc("GET /api/bootstrap/security/clients", a.bsAPICredList)
	m.HandleFunc("PUT /api/bootstrap/security/clients", a.bsAPICredPut)
	m.HandleFunc("DELETE /api/bootstrap/security/clients/{ep}", a.bsAPICredDelete)
}

func (a *API) bsAPIList(w http.ResponseWriter, r *http.Request) {
	all, err := a.cfg.Bootstrap.Configs()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	mine, err := a.ownedBy(principalOf(r), store.OwnEndpoint)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for ep := range all {
		if !mine(ep) {
			delete(all, ep)
		}
	}
	writeJSON(w, http.StatusOK, all)
}

func (a *API) bsAPIGet(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	c, err := a.cfg.Bootstrap.Config(ep)
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "no bootstrap configuration for "+strconv.Quote(ep))
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := map[string]any{"endpoint": ep, "config": c}
	if st, ok := a.cfg.Bootstrap.Status(ep); ok {
		out["status"] = st
	}
	writeJSON(w, http.StatusOK, out)
}

// bsAPIPut stores a configuration (bootstrap.Server.PutConfig fills DM
// URIs and resolves generatePsk).
func (a *API) bsAPIPut(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	if !lwm2m.ValidEndpoint(ep) {
		httpError(w, http.StatusBadRequest, "bad endpoint name")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<10))
	if err != nil {
		httpError(w, http.StatusBadRequest, "bootstrap config: "+err.Error())
		return
	}
	// What GET answers ({"endpoint", "config", "status"}) may be PUT back
	// as it is: its config is taken.
	var wrapped struct {
		Config json.RawMessage `json:"config"`
	}
	if json.Unmarshal(body, &wrapped) == nil && len(wrapped.Config) > 0 {
		body = wrapped.Config
	}
	var c bootstrap.Config
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		httpError(w, http.StatusBadRequest, "bootstrap config: "+err.Error())
		return
	}
	if err := a.cfg.Bootstrap.PutConfig(ep, &c); err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, bootstrap.ErrBadConfig):
			code = http.StatusBadRequest
		case errors.Is(err, bootstrap.ErrConflict):
			code = http.StatusConflict
		}
		httpError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": ep, "config": &c})
}

func (a *API) bsAPIDelete(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	answerDelete(w, a.cfg.Bootstrap.DeleteConfig(ep), "bootstrap configuration", ep)
}

func (a *API) bsAPICredList(w http.ResponseWriter, r *http.Request) {
	all, err := a.cfg.Bootstrap.Credentials()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	mine, err := a.ownedBy(principalOf(r), store.OwnEndpoint)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []securityJSON{}
	for _, c := range all {
		if !mine(c.Endpoint) {
			continue
		}
		j := toSecurityJSON(c)
		j.TLS.Details.Key = "" // keys are written, never read back
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) bsAPICredPut(w http.ResponseWriter, r *http.Request) {
	var j securityJSON
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&j); err != nil {
		httpError(w, http.StatusBadRequest, "bootstrap security info: "+err.Error())
		return
	}
	if !lwm2m.ValidEndpoint(j.Endpoint) {
		httpError(w, http.StatusBadRequest, "bootstrap security info: endpoint missing or too long")
		return
	}
	if j.TLS.Mode != transport.SecurityPSK {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("bootstrap security info: mode %q: only psk is supported for bootstrap", j.TLS.Mode))
		return
	}
	key, err := hex.DecodeString(j.TLS.Details.Key)
	if err != nil || len(key) == 0 || len(key) > 64 {
		httpError(w, http.StatusBadRequest, "bootstrap security info: psk key must be 1 to 64 bytes of hex")
		return
	}
	id := j.TLS.Details.Identity
	if id == "" || len(id) > 128 {
		httpError(w, http.StatusBadRequest, "bootstrap security info: psk identity must be 1 to 128 bytes")
		return
	}
	c := store.Credential{Endpoint: j.Endpoint, Mode: transport.SecurityPSK, Identity: id, Key: key}
	p := principalOf(r)
	if !a.claim(w, p, store.OwnEndpoint, c.Endpoint) {
		return
	}
	if err := a.cfg.Bootstrap.PutCredential(c); err != nil {
		code, msg := http.StatusInternalServerError, err.Error()
		if errors.Is(err, bootstrap.ErrConflict) {
			code = http.StatusConflict
			if p.Domain != store.DefaultDomain {
				msg = fmt.Sprintf("bootstrap psk identity %q is taken by another endpoint: choose another", id)
			}
		}
		httpError(w, code, msg)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) bsAPICredDelete(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	answerDelete(w, a.cfg.Bootstrap.DeleteCredential(ep), "bootstrap credential", ep)
}

// answerDelete answers a DELETE of what of ep: 204, 404 when it was not
// stored, 500 otherwise.
func answerDelete(w http.ResponseWriter, err error, what, ep string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpError(w, http.StatusNotFound, "no "+what+" for "+strconv.Quote(ep))
	case err != nil:
		httpError(w, http.StatusInternalServerError, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
