package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/fotastack/fota/server/store"
)

// auditKeep bounds the audit trail.
const auditKeep = 10000

// audit writes one entry of the trail; a failure is logged, never turned
// into the request's failure (the request has been answered).
func (a *API) audit(e store.AuditEntry) {
	if a.cfg.Store == nil {
		return
	}
	if err := a.cfg.Store.AddAudit(e, auditKeep); err != nil {
		a.log.Error("audit entry not stored", "action", e.Action, "err", err)
	}
}

// limitParam reads ?limit= (default def, at most max).
func limitParam(r *http.Request, def, max int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, false
	}
	return n, true
}

// apiHistory serves GET /api/clients/{ep}/history[?limit=N]: the device's
// history, oldest first; the endpoint need not be registered now.
func (a *API) apiHistory(w http.ResponseWriter, r *http.Request) {
	n, ok := limitParam(r, 200, 1000)
	if !ok {
		httpError(w, http.StatusBadRequest, "limit must be a number from 1 to 1000")
		return
	}
	h, err := a.cfg.Store.History(r.PathValue("ep"), n)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "read history: "+err.Error())
		return
	}
	if h == nil {
		h = []store.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, h)
}

// apiAudit serves GET /api/audit[?limit=N][&since=RFC3339]: the API calls
// that changed something, oldest first.
func (a *API) apiAudit(w http.ResponseWriter, r *http.Request) {
	n, ok := limitParam(r, 100, auditKeep)
	if !ok {
		httpError(w, http.StatusBadRequest, "limit must be a number from 1 to 10000")
		return
	}
	// The trail is shared by the domains: read it whole (it is bounded by
	// auditKeep) and keep the newest n of the caller's domain.
	es, err := a.cfg.Store.Audit(auditKeep)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "read audit trail: "+err.Error())
		return
	}
	dom := principalOf(r).Domain
	kept := es[:0]
	for _, e := range es {
		if e.Domain == dom || e.Domain == "" && dom == store.DefaultDomain {
			kept = append(kept, e)
		}
	}
	es = kept[max(0, len(kept)-n):]
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			httpError(w, http.StatusBadRequest, "since must be an RFC 3339 time, as 2026-12-05T10:00:00Z")
			return
		}
		kept := es[:0]
		for _, e := range es {
			if !e.Time.Before(t) {
				kept = append(kept, e)
			}
		}
		es = kept
	}
	if es == nil {
		es = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, es)
}
