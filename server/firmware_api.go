package server

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
)

// routes adds the firmware API to the server's HTTP mux (behind its token):
//
//	POST   /api/firmware?deviceType=T&version=V[&opaque=true]  raw body, or multipart with a "file" part
//	GET    /api/firmware                     the images
//	GET    /api/firmware/{id}                one image
//	DELETE /api/firmware/{id}                an image and its packages
//	GET    /api/firmware/key                 the packages' Ed25519 public key, hex
//	GET    /api/firmware/packages            the packages made so far
//	POST   /api/firmware/packages?image=ID[&from=V][&full=true]  make (or find) a package
//	PUT    /api/firmware/types/{type}        {"eraseBlock":4096,"ram":16384}
//	GET    /api/firmware/types/{type}
func (f *Firmware) routes(m *http.ServeMux) {
	m.HandleFunc("POST /api/firmware", f.apiUpload)
	m.HandleFunc("GET /api/firmware", f.apiList)
	m.HandleFunc("GET /api/firmware/key", f.apiKey)
	m.HandleFunc("GET /api/firmware/packages", f.apiPackages)
	m.HandleFunc("POST /api/firmware/packages", f.apiMakePackage)
	m.HandleFunc("PUT /api/firmware/types/{type}", f.apiPutProfile)
	m.HandleFunc("GET /api/firmware/types/{type}", f.apiGetProfile)
	m.HandleFunc("GET /api/firmware/{id}", f.apiImage)
	m.HandleFunc("DELETE /api/firmware/{id}", f.apiDelete)
}

func firmwareHTTPError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNoImage), errors.Is(err, ErrNoPackage):
		code = http.StatusNotFound
	case errors.Is(err, ErrImageExists):
		code = http.StatusConflict
	case errors.Is(err, ErrBadImage):
		code = http.StatusBadRequest
	}
	httpError(w, code, err.Error())
}

// apiUpload stores an image. Parameters come from the query or, for a
// multipart body, from its form fields; the image is the raw body or the
// multipart part named "file".
func (f *Firmware) apiUpload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxImageSize+1<<20)
	q := r.URL.Query()
	param := func(k string) string {
		if v := q.Get(k); v != "" {
			return v
		}
		return r.FormValue(k)
	}
	var data []byte
	var err error
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
		data, err = io.ReadAll(io.LimitReader(file, MaxImageSize+1))
	} else {
		data, err = io.ReadAll(io.LimitReader(r.Body, MaxImageSize+1))
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, "read image: "+err.Error())
		return
	}
	dt, ver := param("deviceType"), param("version")
	opaque := param("opaque") == "true" || param("opaque") == "1"
	if eb, ram := param("eraseBlock"), param("ram"); eb != "" || ram != "" {
		prof := f.Profile(dt)
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
		if err := f.SetProfile(prof); err != nil {
			firmwareHTTPError(w, err)
			return
		}
	}
	img, err := f.AddImage(dt, ver, data, opaque)
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, img)
}

func (f *Firmware) apiList(w http.ResponseWriter, r *http.Request) {
	imgs, err := f.Images()
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	if imgs == nil {
		imgs = []Image{}
	}
	writeJSON(w, http.StatusOK, imgs)
}

func (f *Firmware) apiImage(w http.ResponseWriter, r *http.Request) {
	img, err := f.Image(r.PathValue("id"))
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, img)
}

func (f *Firmware) apiDelete(w http.ResponseWriter, r *http.Request) {
	if err := f.DeleteImage(r.PathValue("id")); err != nil {
		firmwareHTTPError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Firmware) apiKey(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"algorithm": "Ed25519", "publicKey": hex.EncodeToString(f.PublicKey())})
}

func (f *Firmware) apiPackages(w http.ResponseWriter, r *http.Request) {
	ps, err := f.Packages()
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	out := make([]map[string]any, 0, len(ps))
	for _, p := range ps {
		out = append(out, packageJSON(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func packageJSON(p Package) map[string]any {
	var m map[string]any
	b, _ := json.Marshal(p)
	_ = json.Unmarshal(b, &m)
	m["path"] = p.Path()
	m["etag"] = hex.EncodeToString(p.ETag())
	return m
}

func (f *Firmware) apiMakePackage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	img, err := f.Image(q.Get("image"))
	if err != nil {
		firmwareHTTPError(w, err)
		return
	}
	p, err := f.PackageFor(img, q.Get("from"), q.Get("full") == "true")
	if err != nil {
		firmwareHTTPError(w, fmt.Errorf("%w: %v", ErrBadImage, err))
		return
	}
	writeJSON(w, http.StatusOK, packageJSON(p))
}

func (f *Firmware) apiPutProfile(w http.ResponseWriter, r *http.Request) {
	var p DeviceProfile
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&p); err != nil {
		httpError(w, http.StatusBadRequest, "device profile: "+err.Error())
		return
	}
	p.DeviceType = r.PathValue("type")
	if err := f.SetProfile(p); err != nil {
		firmwareHTTPError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, f.Profile(p.DeviceType))
}

func (f *Firmware) apiGetProfile(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, f.Profile(strings.TrimSpace(r.PathValue("type"))))
}
