package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/software"
)

// appRoutes: the application repository and the applications of each
// device (Software Management, /9):
//
//	POST   /api/apps?name=N&version=V         raw body, or multipart with a "file" part
//	GET    /api/apps                          the repository
//	GET    /api/apps/{id}                     one app version
//	DELETE /api/apps/{id}
//	GET    /api/clients/{ep}/apps             the device's /9 instances, read from it
//	POST   /api/clients/{ep}/apps/{name}/{op} install (?version=V), uninstall, activate, deactivate: a job
//	GET    /api/clients/{ep}/apps/{name}/job  the last job on that app, running or ended
func (a *API) appRoutes() {
	m := a.mux
	m.HandleFunc("POST /api/apps", a.appUpload)
	m.HandleFunc("GET /api/apps", a.appList)
	m.HandleFunc("GET /api/apps/{id}", a.appGet)
	m.HandleFunc("DELETE /api/apps/{id}", a.appDelete)
	m.HandleFunc("GET /api/clients/{ep}/apps", a.appDevice)
	m.HandleFunc("POST /api/clients/{ep}/apps/{name}/{op}", a.appStart)
	m.HandleFunc("GET /api/clients/{ep}/apps/{name}/job", a.appJob)
}

func appHTTPError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, software.ErrNoApp), errors.Is(err, dm.ErrUnknownDevice):
		code = http.StatusNotFound
	case errors.Is(err, software.ErrAppExists), errors.Is(err, software.ErrBusy):
		code = http.StatusConflict
	case errors.Is(err, software.ErrBadApp):
		code = http.StatusBadRequest
	case errors.Is(err, dm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, dm.ErrQueueFull), errors.Is(err, dm.ErrNoSession):
		code = http.StatusServiceUnavailable
	}
	httpError(w, code, err.Error())
}

// appUpload streams the application into the store.
func (a *API) appUpload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name, version := q.Get("name"), q.Get("version")
	var body io.Reader = r.Body
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			httpError(w, http.StatusBadRequest, "multipart body: "+err.Error())
			return
		}
		file, _, err := r.FormFile("file")
		if err != nil {
			httpError(w, http.StatusBadRequest, `multipart body needs a "file" part: `+err.Error())
			return
		}
		defer file.Close()
		body = file
		if name == "" {
			name = r.FormValue("name")
		}
		if version == "" {
			version = r.FormValue("version")
		}
	}
	app, err := a.cfg.Software.Add(name, version, body)
	if err != nil {
		appHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, app)
}

func (a *API) appList(w http.ResponseWriter, r *http.Request) {
	apps, err := a.cfg.Software.Apps()
	if err != nil {
		appHTTPError(w, err)
		return
	}
	if apps == nil {
		apps = []software.App{}
	}
	writeJSON(w, http.StatusOK, apps)
}

func (a *API) appGet(w http.ResponseWriter, r *http.Request) {
	app, err := a.cfg.Software.App(r.PathValue("id"))
	if err != nil {
		appHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, app)
}

func (a *API) appDelete(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Software.Delete(r.PathValue("id")); err != nil {
		appHTTPError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// appDevice reads the device's /9 instances.
func (a *API) appDevice(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.dm.RequestTimeout())
	defer cancel()
	insts, err := a.cfg.Software.Instances(ctx, r.PathValue("ep"))
	if err != nil {
		appHTTPError(w, err)
		return
	}
	if insts == nil {
		insts = []software.Instance{}
	}
	writeJSON(w, http.StatusOK, insts)
}

// appStart starts an operation; 202 with its job, which .../job follows.
func (a *API) appStart(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := software.Request{Endpoint: r.PathValue("ep"), App: r.PathValue("name"), Op: r.PathValue("op"),
		Version: q.Get("version"), Push: q.Get("push") == "true"}
	if t := q.Get("timeout"); t != "" {
		s, err := strconv.ParseFloat(t, 64)
		if err != nil || s <= 0 || s > 3600 {
			httpError(w, http.StatusBadRequest, "timeout "+strconv.Quote(t)+": want seconds, 0 < t <= 3600")
			return
		}
		req.Timeout = time.Duration(s * float64(time.Second))
	}
	job, err := a.cfg.Software.Start(req)
	if err != nil {
		appHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, job)
}

func (a *API) appJob(w http.ResponseWriter, r *http.Request) {
	job, ok := a.cfg.Software.Job(r.PathValue("ep"), r.PathValue("name"))
	if !ok {
		httpError(w, http.StatusNotFound, "no operation on "+r.PathValue("name")+" of "+r.PathValue("ep")+" since the server started")
		return
	}
	writeJSON(w, http.StatusOK, job)
}
