package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// routes adds the campaign API (behind the server's token):
//
//	POST /api/campaigns                   create (Campaign JSON; "image" or "deviceType"+"version")
//	GET  /api/campaigns                   all, with summaries
//	GET  /api/campaigns/{id}              one, with its summary and devices
//	POST /api/campaigns/{id}/pause        {"reason": "..."} optional
//	POST /api/campaigns/{id}/resume
//	POST /api/campaigns/{id}/abort
//	GET  /api/campaigns/{id}/events       Server-Sent Events: "status" snapshots and "device" changes
func (m *Campaigns) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/campaigns", m.apiCreate)
	mux.HandleFunc("GET /api/campaigns", m.apiList)
	mux.HandleFunc("GET /api/campaigns/{id}", m.apiGet)
	mux.HandleFunc("POST /api/campaigns/{id}/{action}", m.apiAction)
	mux.HandleFunc("GET /api/campaigns/{id}/events", m.apiEvents)
}

// CampaignStatus is a campaign with its device counts (and, for one
// campaign, its devices): the API's answer.
type CampaignStatus struct {
	Campaign
	Summary Summary          `json:"summary"`
	Devices []CampaignDevice `json:"devices,omitempty"`
}

func campaignHTTPError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNoCampaign):
		code = http.StatusNotFound
	case errors.Is(err, ErrBadCampaign):
		code = http.StatusBadRequest
	case errors.Is(err, ErrCampaignEnd):
		code = http.StatusConflict
	}
	httpError(w, code, err.Error())
}

func (m *Campaigns) apiCreate(w http.ResponseWriter, r *http.Request) {
	var c Campaign
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		httpError(w, http.StatusBadRequest, "campaign: "+err.Error())
		return
	}
	c, err := m.Create(c)
	if err != nil {
		campaignHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, m.status(c.ID, false))
}

func (m *Campaigns) status(id string, devices bool) CampaignStatus {
	c, devs, _ := m.Campaign(id)
	st := CampaignStatus{Campaign: c, Summary: Summarize(devs)}
	if devices {
		st.Devices = devs
	}
	return st
}

func (m *Campaigns) apiList(w http.ResponseWriter, r *http.Request) {
	out := []CampaignStatus{}
	for _, c := range m.List() {
		out = append(out, m.status(c.ID, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *Campaigns) apiGet(w http.ResponseWriter, r *http.Request) {
	if _, _, err := m.Campaign(r.PathValue("id")); err != nil {
		campaignHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m.status(r.PathValue("id"), true))
}

func (m *Campaigns) apiAction(w http.ResponseWriter, r *http.Request) {
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
		_, err = m.Pause(id, body.Reason)
	case "resume":
		_, err = m.Resume(id)
	case "abort":
		if body.Reason == "" {
			body.Reason = "aborted by operator"
		}
		_, err = m.Abort(id, body.Reason)
	default:
		httpError(w, http.StatusNotFound, fmt.Sprintf("no campaign action %q (pause, resume, abort)", r.PathValue("action")))
		return
	}
	if err != nil {
		campaignHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m.status(id, false))
}

// apiEvents streams a campaign's progress as Server-Sent Events: a "status"
// event (CampaignStatus without devices) at once, on every campaign change
// and at least every second, and a "device" event (CampaignDevice) on every
// device change. The stream ends after the campaign completes or aborts.
func (m *Campaigns) apiEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, _, err := m.Campaign(id); err != nil {
		campaignHTTPError(w, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ch, cancel := m.srv.Events().Subscribe(1024)
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
		st := m.status(id, false)
		send("status", st)
		return st.State == CampaignCompleted || st.State == CampaignAborted
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
		case <-m.stop:
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
			if e.Type != EventCampaign || data["campaign"] != id {
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
