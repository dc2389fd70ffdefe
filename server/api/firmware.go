package api

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/store"
)

// firmwareRoutes: the firmware repository (behind the token):
//
//	POST   /api/firmware?deviceType=T&version=V[&seq=N][&opaque=true]  raw body, or multipart with a "file" part
//	GET    /api/firmware                     the images
//	GET    /api/firmware/{id}                one image
//	DELETE /api/firmware/{id}                an image and its packages
//	GET    /api/firmware/key                 the packages' Ed25519 public key, hex
//	GET    /api/firmware/packages            the packages made so far
//	POST   /api/firmware/packages?image=ID[&from=V][&full=true]  make (or find) a package
//	PUT    /api/firmware/types/{type}        {"eraseBlock":4096,"ram":16384}
//	GET    /api/firmware/types/{type}
func (a *API) firmwareRoutes() {
	m := a.mux
	m.HandleFunc("POST /api/firmware", a.fwUpload)
	m.HandleFunc("GET /api/firmware", a.fwList)
	m.HandleFunc("GET /api/firmware/key", a.fwKey)
	m.HandleFunc("GET /api/firmware/packages", a.fwPackages)
	m.HandleFunc("POST /api/firmware/packages", a.fwMakePackage)
	m.HandleFunc("PUT /api/firmware/types/{type}", a.fwPutProfile)
	m.HandleFunc("GET /api/firmware/types/{type}", a.fwGetProfile)
	m.HandleFunc("GET /api/firmware/{id}", a.fwImage)
	m.HandleFunc("DELETE /api/firmware/{id}", a.fwDelete)
}

func firmwareHTTPError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, firmware.ErrNoImage), errors.Is(err, firmware.ErrNoPackage):
		code = http.StatusNotFound
	case errors.Is(err, firmware.ErrImageExists):
		code = http.StatusConflict
	case errors.Is(err, firmware.ErrBadImage):
		code = http.StatusBadRequest
	}
	httpError(w, code, err.Error())
}

// fwUpload stores an image. Parameters come from the query or, for a
// multipart body, from its form fields; the image is the raw body or the
// multipart part named "file".
func (a *API) fwUpload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, firmware.MaxImageSize+1<<20)
	q := r.URL.Query()
	var form map[string][]string // the fields of a multipart body
	param := func(k string) string {
		if v := q.Get(k); v != "" {
			return v
		}
		if vs := form[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	// The image is streamed into the store, never read whole here. Only a
	// multipart body has form fields: r.FormValue would parse the raw image
	// that curl --data-binary labels application/x-www-form-urlencoded as a
	// form and leave nothing to store.
	var body io.Reader = r.Body
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			httpError(w, http.StatusBadRequest, "multipart body: "+err.Error())
			return
		}
		file, _, ferr := r.FormFile("file")
		if ferr != nil {
			httpError(w, http.StatusBadRequest, `multipart body needs a "file" part: `+ferr.Error())
			return
		}
		defer file.Close()
		body = file
		form = r.MultipartForm.Value
	}
	var err error
	dt, ver := param("deviceType"), param("version")
	p := principalOf(r)
	if dt != "" && !a.claim(w, p, store.OwnDeviceType, dt) {
		return
	}
	opaque := param("opaque") == "true" || param("opaque") == "1"
	if eb, ram := param("eraseBlock"), param("ram"); eb != "" || ram != "" {
		prof := a.cfg.Firmware.Profile(dt)
		if eb != "" {
			if prof.EraseBlock, err = strconv.Atoi(eb); err != nil {
				httpError(w, http.StatusBadRequest, "eraseBlock: "+err.Error())
				return
			}
		}
		if ram != "" {
			if prof.RAM, err = strconv.Atoi(ram); err != nil {
				httpError(w, http.StatusBadRequest, "ram: "+err.Error())
				return
			}
		}
		if err := a.cfg.Firmware.SetProfile(prof); err != nil {
			firmwareHTTPError(w, err)
			return
		}
	}
	spec := firmware.ImageSpec{DeviceType: dt, Version: ver, Opaque: opaque}
	if v := param("seq"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("seq %q: want a rollback counter from 1 up", v))
			return
		}
		spec.SeqNo = uint32(n)
	}
	img, err := a.cfg.Firmware.Upload(spec, body)
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	if !a.claim(w, p, store.OwnImage, img.ID) {
		return
	}
	writeJSON(w, http.StatusCreated, img)
}

func (a *API) fwList(w http.ResponseWriter, r *http.Request) {
	imgs, err := a.cfg.Firmware.Images()
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	mine, err := a.ownedBy(principalOf(r), store.OwnImage)
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	out := []firmware.Image{}
	for _, i := range imgs {
		if mine(i.ID) {
			out = append(out, i)
		}
	}
	imgs = out
	writeJSON(w, http.StatusOK, imgs)
}

func (a *API) fwImage(w http.ResponseWriter, r *http.Request) {
	img, err := a.cfg.Firmware.Image(r.PathValue("id"))
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, img)
}

func (a *API) fwDelete(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Firmware.DeleteImage(r.PathValue("id")); err != nil {
		firmwareHTTPError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) fwKey(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"algorithm": "Ed25519", "publicKey": hex.EncodeToString(a.cfg.Firmware.PublicKey())})
}

func (a *API) fwPackages(w http.ResponseWriter, r *http.Request) {
	ps, err := a.cfg.Firmware.Packages()
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	mine, err := a.ownedBy(principalOf(r), store.OwnImage)
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	out := make([]map[string]any, 0, len(ps))
	for _, p := range ps {
		if mine(p.ToImage) {
			out = append(out, packageJSON(p))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func packageJSON(p firmware.Package) map[string]any {
	var m map[string]any
	b, _ := json.Marshal(p)
	_ = json.Unmarshal(b, &m)
	m["path"] = firmware.PathOf(p)
	m["etag"] = hex.EncodeToString(p.ETag())
	return m
}

func (a *API) fwMakePackage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	img, err := a.cfg.Firmware.Image(q.Get("image"))
	if err == nil && !a.mine(principalOf(r), store.OwnImage, img.ID) {
		err = fmt.Errorf("%w: %q", firmware.ErrNoImage, q.Get("image"))
	}
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	p, err := a.cfg.Firmware.PackageFor(img, q.Get("from"), q.Get("full") == "true")
	if err != nil {
		firmwareHTTPError(w, fmt.Errorf("%w: %v", firmware.ErrBadImage, err))
		return
	}
	writeJSON(w, http.StatusOK, packageJSON(p))
}

func (a *API) fwPutProfile(w http.ResponseWriter, r *http.Request) {
	var p firmware.DeviceProfile
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&p); err != nil {
		httpError(w, http.StatusBadRequest, "device profile: "+err.Error())
		return
	}
	p.DeviceType = r.PathValue("type")
	if err := a.cfg.Firmware.SetProfile(p); err != nil {
		firmwareHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.cfg.Firmware.Profile(p.DeviceType))
}

func (a *API) fwGetProfile(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.cfg.Firmware.Profile(strings.TrimSpace(r.PathValue("type"))))
}
