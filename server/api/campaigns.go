package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/store"
)

// campaignRoutes: campaigns (behind the token):
//
//	POST /api/campaigns                   create (Campaign JSON; "image" or "deviceType"+"version")
//	GET  /api/campaigns                   all, with summaries
//	GET  /api/campaigns/{id}              one, with its summary and devices
//	POST /api/campaigns/{id}/pause        {"reason": "..."} optional
//	POST /api/campaigns/{id}/resume
//	POST /api/campaigns/{id}/retry        the failed devices again
//	POST /api/campaigns/{id}/abort
//	GET  /api/campaigns/{id}/events       Server-Sent Events: "status" snapshots and "device" changes
func (a *API) campaignRoutes() {
	mux := a.mux
	mux.HandleFunc("POST /api/campaigns", a.campaignCreate)
	mux.HandleFunc("GET /api/campaigns", a.campaignList)
	mux.HandleFunc("GET /api/campaigns/{id}", a.campaignGet)
	mux.HandleFunc("POST /api/campaigns/{id}/{action}", a.campaignAction)
	mux.HandleFunc("GET /api/campaigns/{id}/events", a.campaignEvents)
}

func campaignHTTPError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, campaign.ErrNoCampaign):
		code = http.StatusNotFound
	case errors.Is(err, campaign.ErrBadCampaign):
		code = http.StatusBadRequest
	case errors.Is(err, campaign.ErrCampaignEnd), errors.Is(err, campaign.ErrDowngrade), errors.Is(err, campaign.ErrDuplicate):
		code = http.StatusConflict
	}
	httpError(w, code, err.Error())
}

func (a *API) campaignCreate(w http.ResponseWriter, r *http.Request) {
	var c campaign.Campaign
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		httpError(w, http.StatusBadRequest, "campaign: "+err.Error())
		return
	}
	p := principalOf(r)
	if c.Image != "" && !a.mine(p, store.OwnImage, c.Image) || c.DeviceType != "" && !a.mine(p, store.OwnDeviceType, c.DeviceType) {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("campaign: no image %q (device type %q, version %q) in domain %s", c.Image, c.DeviceType, c.Version, p.Domain))
		return
	}
	for _, ep := range c.Targets.Endpoints {
		if !a.mine(p, store.OwnEndpoint, ep) {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("campaign: target %q is no endpoint of domain %s", ep, p.Domain))
			return
		}
	}
	// A filter selects among the domain's devices only (campaign.Engine
	// asks Config.DomainOf).
	c.Domain = p.Domain
	if p.Domain == store.DefaultDomain {
		c.Domain = ""
	}
	c, err := a.cfg.Campaigns.Create(c)
	if err != nil {
		campaignHTTPError(w, err)
		return
	}
	if a.cfg.Domains != nil {
		if err := a.cfg.Domains.Claim(store.OwnCampaign, c.ID, p.Domain); err != nil {
			// A fresh random ID: only a store failure gets here. The
			// campaign runs; abort it so it does not run unowned.
			_, _ = a.cfg.Campaigns.Abort(c.ID, "its domain could not be recorded")
			httpError(w, http.StatusInternalServerError, "record the campaign's domain: "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusCreated, a.cfg.Campaigns.Status(c.ID, false))
}

func (a *API) campaignList(w http.ResponseWriter, r *http.Request) {
	out := []campaign.Status{}
	mine, err := a.ownedBy(principalOf(r), store.OwnCampaign)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, c := range a.cfg.Campaigns.List() {
		if !mine(c.ID) {
			continue
		}
		out = append(out, a.cfg.Campaigns.Status(c.ID, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) campaignGet(w http.ResponseWriter, r *http.Request) {
	if _, _, err := a.cfg.Campaigns.Campaign(r.PathValue("id")); err != nil {
		campaignHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.cfg.Campaigns.Status(r.PathValue("id"), true))
}

func (a *API) campaignAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var body struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body)
	var err error
	switch r.PathValue("action") {
	case "pause":
		if body.Reason == "" {
			body.Reason = "paused by operator"
		}
		_, err = a.cfg.Campaigns.Pause(id, body.Reason)
	case "resume":
		_, err = a.cfg.Campaigns.Resume(id)
	case "retry":
		_, _, err = a.cfg.Campaigns.Retry(id)
	case "abort":
		if body.Reason == "" {
			body.Reason = "aborted by operator"
		}
		_, err = a.cfg.Campaigns.Abort(id, body.Reason)
	default:
		httpError(w, http.StatusNotFound, fmt.Sprintf("no campaign action %q (pause, resume, retry, abort)", r.PathValue("action")))
		return
	}
	if err != nil {
		campaignHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.cfg.Campaigns.Status(id, false))
}

// campaignEvents streams a campaign's progress as Server-Sent Events: a "status"
// event (CampaignStatus without devices) at once, on every campaign change
// and at least every second, and a "device" event (CampaignDevice) on every
// device change. The stream ends after the campaign completes or aborts.
func (a *API) campaignEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, _, err := a.cfg.Campaigns.Campaign(id); err != nil {
		campaignHTTPError(w, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ch, cancel := a.cfg.Events.Subscribe(1024)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) {
		data, err := json.Marshal(v)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		fl.Flush()
	}
	status := func() bool {
		st := a.cfg.Campaigns.Status(id, false)
		send("status", st)
		return st.State == campaign.Completed || st.State == campaign.Aborted
	}
	if status() {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.cfg.Campaigns.Done():
			return
		case <-tick.C:
			if status() {
				return
			}
		case e, ok := <-ch:
			if !ok {
				return
			}
			data, _ := e.Data.(map[string]any)
			if e.Type != events.Campaign || data["campaign"] != id {
				continue
			}
			if dev, ok := data["device"]; ok {
				send("device", dev)
				continue
			}
			if status() {
				return
			}
		}
	}
}
