package objects

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/fotastack/fota/lwm2m"
)

// Registry holds object models by object ID and object version. It is safe
// for concurrent use: lookups take a read lock, Add and LoadDir a write lock.
// The models it returns are shared and must not be modified.
type Registry struct {
	mu sync.RWMutex
	// versions of each object, newest first.
	objects map[uint16][]*ObjectModel
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{objects: make(map[uint16][]*ObjectModel)}
}

//go:embed ddf/*.xml
var builtinDDF embed.FS

var (
	builtinOnce   sync.Once
	builtinModels []*ObjectModel
	builtinErr    error
)

// Builtin returns the models the package ships, parsed once from the DDF
// files in ddf/ through the same loader as custom models: 0 LwM2M Security,
// 1 LwM2M Server, 2 Access Control, 3 Device, 4 Connectivity Monitoring,
// 5 Firmware Update (object version 1.1), 6 Location, 7 Connectivity
// Statistics and 9 Software Management, at their newest object versions;
// and the earlier versions a LwM2M 1.1 client implements (Server 1.1,
// Device 1.1, Access Control 1.0), which Get does not return but
// GetVersion does. The models are shared: read only.
func Builtin() ([]*ObjectModel, error) {
	builtinOnce.Do(func() {
		builtinModels, builtinErr = loadFS(builtinDDF, "ddf")
	})
	return builtinModels, builtinErr
}

// Default returns a new registry preloaded with the built-in models. Each
// call returns its own registry, so models added to one are not seen by
// others. It panics only if the embedded definitions are broken, which the
// package tests rule out.
func Default() *Registry {
	models, err := Builtin()
	if err != nil {
		panic("objects: built-in DDF files do not load: " + err.Error())
	}
	r := NewRegistry()
	if err := r.Add(models...); err != nil {
		panic("objects: built-in models do not register: " + err.Error())
	}
	return r
}

// Add registers models. A model with the ID and version of one already
// registered replaces it (so a custom DDF can correct a built-in one).
// Either all models are added or, on error, none.
func (r *Registry) Add(models ...*ObjectModel) error {
	for _, m := range models {
		if err := m.check(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range models {
		vs := r.objects[m.ID]
		i := slices.IndexFunc(vs, func(o *ObjectModel) bool { return o.Version == m.Version })
		if i >= 0 {
			vs = slices.Clone(vs) // readers never see a slice change under them
			vs[i] = m
		} else {
			vs = append(slices.Clone(vs), m)
		}
		sort.SliceStable(vs, func(a, b int) bool { return compareVersions(vs[a].Version, vs[b].Version) > 0 })
		r.objects[m.ID] = vs
	}
	return nil
}

// Get returns the newest registered version of object id.
func (r *Registry) Get(id uint16) (*ObjectModel, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := r.objects[id]
	if len(vs) == 0 {
		return nil, false
	}
	return vs[0], true
}

// GetVersion returns object id at the given object version ("1.1"), as a
// client announces it in its registration (`</5>;ver=1.1`, LwM2M Core
// 6.2.1); an empty version means the newest.
func (r *Registry) GetVersion(id uint16, version string) (*ObjectModel, bool) {
	if version == "" {
		return r.Get(id)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, m := range r.objects[id] {
		if compareVersions(m.Version, version) == 0 {
			return m, true
		}
	}
	return nil, false
}

// Versions returns the registered versions of object id, newest first.
func (r *Registry) Versions(id uint16) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.objects[id]))
	for _, m := range r.objects[id] {
		out = append(out, m.Version)
	}
	return out
}

// List returns the newest version of every registered object, by ID.
func (r *Registry) List() []*ObjectModel {
	r.mu.RLock()
	out := make([]*ObjectModel, 0, len(r.objects))
	for _, vs := range r.objects {
		if len(vs) > 0 {
			out = append(out, vs[0])
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *ObjectModel) int { return int(a.ID) - int(b.ID) })
	return out
}

// Resource returns the model of the resource a /o/i/r or /o/i/r/ri path
// names, in the newest version of its object.
func (r *Registry) Resource(p lwm2m.Path) (*ResourceModel, bool) {
	if p.Len() < 3 {
		return nil, false
	}
	o, ok := r.Get(p.Object())
	if !ok {
		return nil, false
	}
	return o.Resource(p.Resource())
}

// ResourceType returns the data type of the resource a /o/i/r or /o/i/r/ri
// path names. It makes the registry a TypeResolver for the lwm2m codecs,
// which need the type to decode TLV and text values (LwM2M Core 7.4).
func (r *Registry) ResourceType(p lwm2m.Path) (lwm2m.Type, bool) {
	res, ok := r.Resource(p)
	if !ok {
		return lwm2m.TypeNone, false
	}
	return res.Type, true
}

// LoadDir loads every *.xml file in dir as an OMA DDF file and registers the
// models. Nothing is registered unless every file loads; the error names the
// file at fault.
func (r *Registry) LoadDir(dir string) error {
	models, err := loadFS(os.DirFS(dir), ".")
	if err != nil {
		return fmt.Errorf("load DDF directory %s: %w", dir, err)
	}
	return r.Add(models...)
}

// loadFS parses the *.xml files directly in dir of fsys, in name order.
func loadFS(fsys fs.FS, dir string) ([]*ObjectModel, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []*ObjectModel
	for _, e := range entries {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".xml") {
			continue
		}
		name := e.Name()
		if dir != "." {
			name = dir + "/" + name
		}
		models, err := loadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, models...)
	}
	return out, nil
}

func loadFile(fsys fs.FS, name string) ([]*ObjectModel, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > MaxDDFSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, limit %d", name, ErrDDF, st.Size(), MaxDDFSize)
	}
	models, err := LoadDDF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return models, nil
}
