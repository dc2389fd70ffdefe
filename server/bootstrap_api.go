package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// RegisterAPI adds the bootstrap routes to an API mux (the DM server's
// Mux, behind its bearer token):
//
//	GET    /api/bootstrap                        all configurations
//	GET    /api/bootstrap/{ep}                   one configuration and its last outcome
//	PUT    /api/bootstrap/{ep}                   store a configuration (generatePsk resolved here)
//	DELETE /api/bootstrap/{ep}
//	GET    /api/bootstrap/security/clients       bootstrap credentials (keys left out)
//	PUT    /api/bootstrap/security/clients       store one, Leshan's security-info shape
//	DELETE /api/bootstrap/security/clients/{ep}
func (b *BootstrapServer) RegisterAPI(m *http.ServeMux) {
	m.HandleFunc("GET /api/bootstrap", b.apiList)
	m.HandleFunc("GET /api/bootstrap/{ep}", b.apiGet)
	m.HandleFunc("PUT /api/bootstrap/{ep}", b.apiPut)
	m.HandleFunc("DELETE /api/bootstrap/{ep}", b.apiDelete)
	m.HandleFunc("GET /api/bootstrap/security/clients", b.apiCredList)
	m.HandleFunc("PUT /api/bootstrap/security/clients", b.apiCredPut)
	m.HandleFunc("DELETE /api/bootstrap/security/clients/{ep}", b.apiCredDelete)
}

func (b *BootstrapServer) apiList(w http.ResponseWriter, r *http.Request) {
	all, err := b.store.Configs()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, all)
}

func (b *BootstrapServer) apiGet(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	c, err := b.store.Config(ep)
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "no bootstrap configuration for "+strconv.Quote(ep))
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := map[string]any{"endpoint": ep, "config": c}
	if st, ok := b.Status(ep); ok {
		out["status"] = st
	}
	writeJSON(w, http.StatusOK, out)
}

// apiPut stores a configuration. A DM security instance with an empty URI
// gets the DM server's URI; one with generatePsk gets a fresh identity and
// 16-byte key, entered in the DM security store before the config is
// stored (and taken out again if storing the config fails), so a device is
// never handed a key the DM server does not know.
func (b *BootstrapServer) apiPut(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	if ep == "" || len(ep) > maxEndpointLen || !printable(ep) {
		httpError(w, http.StatusBadRequest, "bad endpoint name")
		return
	}
	var c BootstrapConfig
	dec := json.NewDecoder(io.LimitReader(r.Body, 256<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		httpError(w, http.StatusBadRequest, "bootstrap config: "+err.Error())
		return
	}
	var gen *BootstrapSecurity
	for _, i := range sortedIDs(c.Security) {
		s := c.Security[i]
		if s == nil || s.BootstrapServer {
			continue
		}
		if s.URI == "" && b.opts.DMURI != "" {
			s.URI = b.opts.DMURI
		}
		if s.GeneratePSK {
			if gen != nil {
				httpError(w, http.StatusBadRequest, "bootstrap config: generatePsk on more than one security instance")
				return
			}
			gen = s
		}
	}
	if err := c.Validate(); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var prev *store.Credential
	if gen != nil {
		if b.opts.DMStore == nil {
			httpError(w, http.StatusBadRequest, "bootstrap config: generatePsk needs the DM server (run the bootstrap server inside fota server)")
			return
		}
		rnd := make([]byte, 20)
		if _, err := rand.Read(rnd); err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		cred := store.Credential{Endpoint: ep, Mode: transport.SecurityPSK, Identity: ep + "-" + hex.EncodeToString(rnd[:4]), Key: rnd[4:]}
		if _, err := b.store.CredentialByIdentity(cred.Identity); err == nil {
			httpError(w, http.StatusConflict, "generated identity collides with a bootstrap identity; retry")
			return
		}
		if old, err := b.opts.DMStore.Credential(ep); err == nil {
			prev = &old
		}
		if err := b.opts.DMStore.PutCredential(cred); err != nil {
			httpError(w, http.StatusConflict, "register generated psk at the DM server: "+err.Error())
			return
		}
		gen.GeneratePSK = false
		gen.PublicKeyOrID = HexBytes(cred.Identity)
		gen.SecretKey = HexBytes(cred.Key)
		b.log.Info("bootstrap: generated DM psk", "endpoint", ep, "identity", cred.Identity)
	}
	if err := b.store.PutConfig(ep, &c); err != nil {
		if gen != nil {
			// Undo the DM credential: the config that would hand it out
			// was not stored.
			if prev != nil {
				_ = b.opts.DMStore.PutCredential(*prev)
			} else {
				_ = b.opts.DMStore.DeleteCredential(ep)
			}
		}
		httpError(w, http.StatusInternalServerError, "store bootstrap config: "+err.Error())
		return
	}
	b.log.Info("bootstrap config stored", "endpoint", ep)
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": ep, "config": &c})
}

func (b *BootstrapServer) apiDelete(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	err := b.store.DeleteConfig(ep)
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "no bootstrap configuration for "+strconv.Quote(ep))
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (b *BootstrapServer) apiCredList(w http.ResponseWriter, r *http.Request) {
	all, err := b.store.Credentials()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []securityJSON{}
	for _, c := range all {
		j := toSecurityJSON(c)
		j.TLS.Details.Key = "" // keys are written, never read back
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (b *BootstrapServer) apiCredPut(w http.ResponseWriter, r *http.Request) {
	var j securityJSON
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&j); err != nil {
		httpError(w, http.StatusBadRequest, "bootstrap security info: "+err.Error())
		return
	}
	if j.Endpoint == "" || len(j.Endpoint) > maxEndpointLen || !printable(j.Endpoint) {
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
	// The two namespaces stay apart: an identity that opens a DM session
	// must not also be a bootstrap identity (or the reverse), or one key
	// would stand for two roles.
	if b.opts.DMStore != nil {
		if c, err := b.opts.DMStore.CredentialByIdentity(id); err == nil {
			httpError(w, http.StatusConflict, fmt.Sprintf("psk identity %q is a DM identity (endpoint %q)", id, c.Endpoint))
			return
		}
	}
	c := store.Credential{Endpoint: j.Endpoint, Mode: transport.SecurityPSK, Identity: id, Key: key}
	if err := b.store.PutCredential(c); err != nil {
		httpError(w, http.StatusConflict, err.Error())
		return
	}
	b.log.Info("bootstrap credential stored", "endpoint", c.Endpoint, "identity", id)
	w.WriteHeader(http.StatusNoContent)
}

func (b *BootstrapServer) apiCredDelete(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	err := b.store.DeleteCredential(ep)
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "no bootstrap credential for "+strconv.Quote(ep))
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
