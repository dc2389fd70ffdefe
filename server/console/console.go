// Package console is the operator's web console: plain HTML, CSS and
// JavaScript modules embedded in the binary (no Node toolchain to build
// it), served at / beside the HTTP API, whose client it is. The page holds
// no secret: the operator types the API token, the page keeps it in
// sessionStorage and sends it in the Authorization header only.
package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"sort"

	"github.com/fotastack/fota/objects"
)

//go:embed web
var web embed.FS

// Handler serves the console's files and /console/objects.json, the object
// registry's names (it lives outside /api because the page needs it to
// label what a device reports, and it is public knowledge: the OMA
// registry).
func Handler(reg *objects.Registry) http.Handler {
	files, _ := fs.Sub(web, "web")
	objs := objectsJSON(reg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/objects.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(objs)
	})
	fsrv := http.FileServerFS(files)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		// The page may be framed by nobody and load scripts only from here:
		// a token typed into it must not be readable by another origin.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
	return mux
}

type resourceJSON struct {
	ID         uint16 `json:"id"`
	Name       string `json:"name"`
	Operations string `json:"operations"`
	Type       string `json:"type"`
	Multiple   bool   `json:"multiple"`
	Units      string `json:"units,omitempty"`
}

type objectJSON struct {
	ID        uint16         `json:"id"`
	Name      string         `json:"name"`
	Version   string         `json:"version"`
	Multiple  bool           `json:"multiple"`
	Resources []resourceJSON `json:"resources"`
}

// objectsJSON is computed once: the registry does not change while the
// server runs.
func objectsJSON(reg *objects.Registry) []byte {
	if reg == nil {
		reg = objects.Default()
	}
	var out []objectJSON
	for _, o := range reg.List() {
		oj := objectJSON{ID: o.ID, Name: o.Name, Version: o.Version, Multiple: o.Multiple, Resources: []resourceJSON{}}
		for _, id := range o.ResourceIDs() {
			r := o.Resources[id]
			oj.Resources = append(oj.Resources, resourceJSON{ID: id, Name: r.Name, Operations: r.Operations.String(),
				Type: r.Type.String(), Multiple: r.Multiple, Units: r.Units})
		}
		out = append(out, oj)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	b, _ := json.Marshal(out)
	return b
}
