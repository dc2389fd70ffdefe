// Package software is the server side of Software Management (LwM2M
// object 9): the application repository (names and versions, their bytes
// blobs of the store), the signed application packages (package delta/app)
// devices download by Block2 at /sw/{appID} on the device management
// listeners, and the operations that drive one device's /9 instance of an
// application through install, uninstall, activate and deactivate
// (operations.go), each a job the API starts and reports on.
package software

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/fotastack/fota/delta/app"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/store"
)

// MaxAppSize bounds an uploaded application.
const MaxAppSize = 64 << 20

// App is one version of an application in the repository.
type App = store.App

// Errors the HTTP API maps to 404, 409 and 400.
var (
	ErrNoApp     = errors.New("no such application")
	ErrAppExists = errors.New("application version already exists")
	ErrBadApp    = errors.New("bad application")
	ErrBusy      = errors.New("an operation on this application is running on the device")
	ErrState     = errors.New("the device's application is not in a state for this")
)

// AppID is the stable ID of (name, version).
func AppID(name, version string) string {
	h := sha256.Sum256([]byte("app\x00" + name + "\x00" + version))
	return hex.EncodeToString(h[:6])
}

// PathOf is where devices download the package of a: /sw/{ID}.
func PathOf(a App) string { return "/sw/" + a.ID }

// Config tunes the manager.
type Config struct {
	// PackageHost is the host Package URIs name (default: the listener's
	// address, 127.0.0.1 for a wildcard).
	PackageHost string
	// Poll is how often a job reads the device's state (default 500 ms).
	Poll time.Duration
	// MaxJobs bounds the jobs kept (finished ones are dropped oldest
	// first; default 10,000).
	MaxJobs int
}

// Manager is the application repository and the device operations.
type Manager struct {
	dm  *dm.Server
	st  store.AppStore
	key crypto.Signer
	cfg Config

	sigMu sync.Mutex
	sigs  map[string][]byte // app ID -> package signature, made on first download

	mu     sync.Mutex
	jobs   map[jobKey]*Job
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New attaches the repository to srv (the CoAP route /sw/*); key signs
// the packages (the firmware signing key: devices trust one key).
func New(srv *dm.Server, st store.AppStore, key crypto.Signer, cfg Config) *Manager {
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 10000
	}
	m := &Manager{dm: srv, st: st, key: key, cfg: cfg, sigs: map[string][]byte{}, jobs: map[jobKey]*Job{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	srv.Router().Handle("GET", "sw/*", m.handleDownload)
	return m
}

// Close stops the running jobs and waits for them.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

// Add stores the application read from r as name at version.
func (m *Manager) Add(name, version string, r io.Reader) (App, error) {
	name, version = strings.TrimSpace(name), strings.TrimSpace(version)
	if name == "" || version == "" {
		return App{}, fmt.Errorf("%w: name and version are required", ErrBadApp)
	}
	if len(name) > app.MaxName || len(version) > app.MaxName {
		return App{}, fmt.Errorf("%w: name and version are at most %d bytes (LwM2M /9/x/0 and /9/x/1)", ErrBadApp, app.MaxName)
	}
	id := AppID(name, version)
	if _, err := m.st.App(id); err == nil {
		return App{}, fmt.Errorf("%w: %s %s", ErrAppExists, name, version)
	}
	sum, size, err := m.st.PutBlob(r, MaxAppSize)
	if err != nil {
		return App{}, fmt.Errorf("%w: %v", ErrBadApp, err)
	}
	if size == 0 {
		return App{}, fmt.Errorf("%w: empty", ErrBadApp)
	}
	a, err := m.st.AddApp(App{ID: id, Name: name, Version: version, Size: int(size), SHA256: sum, Created: time.Now().UTC().Truncate(time.Second)})
	if errors.Is(err, store.ErrExists) {
		return App{}, fmt.Errorf("%w: %s %s", ErrAppExists, name, version)
	}
	return a, err
}

// App returns the app with this ID.
func (m *Manager) App(id string) (App, error) {
	a, err := m.st.App(id)
	if errors.Is(err, store.ErrNotFound) {
		return App{}, fmt.Errorf("%w: %s", ErrNoApp, id)
	}
	return a, err
}

// Find returns name at version.
func (m *Manager) Find(name, version string) (App, error) {
	a, err := m.st.App(AppID(name, version))
	if errors.Is(err, store.ErrNotFound) {
		return App{}, fmt.Errorf("%w: %s version %s (fota app list shows what there is)", ErrNoApp, name, version)
	}
	return a, err
}

// Apps lists the repository by name, then upload time.
func (m *Manager) Apps() ([]App, error) {
	as, err := m.st.Apps()
	if err != nil {
		return nil, err
	}
	sort.Slice(as, func(i, j int) bool {
		if as[i].Name != as[j].Name {
			return as[i].Name < as[j].Name
		}
		return as[i].Created.Before(as[j].Created) || (as[i].Created.Equal(as[j].Created) && as[i].Version < as[j].Version)
	})
	return as, nil
}

// Delete removes an app version (devices that installed it keep it).
func (m *Manager) Delete(id string) error {
	err := m.st.DeleteApp(id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNoApp, id)
	}
	m.sigMu.Lock()
	delete(m.sigs, id)
	m.sigMu.Unlock()
	return err
}

// PublicKey is the key devices verify packages with.
func (m *Manager) PublicKey() ed25519.PublicKey { return m.key.Public().(ed25519.PublicKey) }

// pkg is the package of an app: header, the blob, signature, read by range.
type pkg struct {
	hdr  []byte
	blob store.Blob
	sig  []byte
	size int64
}

func (p *pkg) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) && off+int64(n) < p.size {
		pos := off + int64(n)
		hl, bl := int64(len(p.hdr)), p.blob.Size()
		var k int
		var err error
		switch {
		case pos < hl:
			k = copy(b[n:], p.hdr[pos:])
		case pos < hl+bl:
			end := min(int64(len(b)-n), hl+bl-pos)
			k, err = p.blob.ReadAt(b[n:n+int(end)], pos-hl)
			if err == io.EOF && k == int(end) {
				err = nil
			}
		default:
			k = copy(b[n:], p.sig[pos-hl-bl:])
		}
		n += k
		if err != nil {
			return n, err
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// Package returns the signed package of a, read by range (its signature is
// made on the first call, one pass over the blob, then kept).
func (m *Manager) Package(a App) (io.ReaderAt, int64, error) {
	blob, err := m.st.OpenBlob(a.SHA256)
	if err != nil {
		return nil, 0, fmt.Errorf("app %s: %w", a.ID, err)
	}
	sum, err := hex.DecodeString(a.SHA256)
	if err != nil || len(sum) != 32 {
		return nil, 0, fmt.Errorf("app %s: bad SHA-256 %q", a.ID, a.SHA256)
	}
	var h32 [32]byte
	copy(h32[:], sum)
	hb := app.EncodeHeader(app.KindBlob, a.Name, a.Version, blob.Size(), h32)
	size := int64(len(hb)) + blob.Size() + ed25519.SignatureSize
	m.sigMu.Lock()
	sig := m.sigs[a.ID]
	m.sigMu.Unlock()
	p := &pkg{hdr: hb, blob: blob, size: size}
	if sig == nil {
		// Sign as Make does: domain + SHA-256 of header and payload.
		d := sha256.New()
		d.Write(hb)
		if _, err := io.Copy(d, io.NewSectionReader(blob, 0, blob.Size())); err != nil {
			return nil, 0, fmt.Errorf("app %s: read blob: %w", a.ID, err)
		}
		if sig, err = app.SignWith(m.key, d.Sum(nil)); err != nil {
			return nil, 0, fmt.Errorf("app %s: sign: %w", a.ID, err)
		}
		m.sigMu.Lock()
		m.sigs[a.ID] = sig
		m.sigMu.Unlock()
	}
	p.sig = sig
	return p, size, nil
}

// handleDownload serves GET /sw/{appID}: the signed package by Block2 with
// its ETag (the signature's first 8 bytes: another package, another tag),
// cut from the stored blob by range, never held whole.
func (m *Manager) handleDownload(w mux.ResponseWriter, r *mux.Message, args []string) {
	a, err := m.st.App(args[0])
	if err != nil {
		_ = w.SetResponse(codes.NotFound, message.TextPlain, bytes.NewReader([]byte("no such application package")))
		return
	}
	p, size, err := m.Package(a)
	if err != nil {
		m.dm.Logger().Error("app download", "app", a.ID, "err", err)
		_ = w.SetResponse(codes.InternalServerError, message.TextPlain, nil)
		return
	}
	etag := p.(*pkg).sig[:8]
	_ = w.SetResponse(codes.Content, message.AppOctets, io.NewSectionReader(p, 0, size))
	w.Message().SetOptionBytes(message.ETag, etag)
	w.Message().SetOptionUint32(message.Size2, uint32(size))
}
