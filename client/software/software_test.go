package software

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/delta/app"
	"github.com/fotastack/fota/delta/tree"
	"github.com/fotastack/fota/lwm2m"
)

var testPub, testKey, _ = ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{3}, 64)))

func appPackage(t testing.TB, kind byte, name, version string, payload []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := app.Make(&b, kind, name, version, bytes.NewReader(payload), int64(len(payload)), sha256.Sum256(payload), testKey); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func open(t *testing.T, cfg Config) *Object {
	t.Helper()
	o, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func res(id uint16, r uint16) lwm2m.Path { return lwm2m.ResourcePath(ObjectID, id, r) }

// waitState waits for instance id to reach state s (the verify and install
// goroutines run behind the requests).
func waitState(t *testing.T, o *Object, id uint16, s State) Info {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, i := range o.Apps() {
			if i.Instance == id && i.State == s && !o.installing(id) {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/9/%d never reached %v: %+v", id, s, o.Apps())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (o *Object) installing(id uint16) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	in := o.insts[id]
	return in != nil && in.rec.Installing
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sameTree(t *testing.T, got, want string) {
	t.Helper()
	g, err := tree.Scan(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := tree.Scan(want)
	if err != nil {
		t.Fatal(err)
	}
	if g.Root() != w.Root() {
		t.Fatalf("%s is not the tree %s", got, want)
	}
}

// The state machine of LwM2M Core E.9 through the object's own interface:
// INITIAL -> (package) DOWNLOADED -> DELIVERED (name and version from the
// package) -> Install -> INSTALLED; Activate and Deactivate only when
// installed; Uninstall back to INITIAL with nothing left on storage.
func TestStateMachine(t *testing.T) {
	dir := t.TempDir()
	o := open(t, Config{Dir: dir, TrustedKey: testPub})
	if err := o.Create(2, nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Execute(res(2, ResInstall), ""); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("Install in INITIAL: %v, want a bad request", err)
	}
	if err := o.Execute(res(2, ResActivate), ""); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("Activate in INITIAL: %v, want a bad request", err)
	}
	pkg := appPackage(t, app.KindBlob, "meter-app", "1.2.0", []byte("the application"))
	if err := o.Write(lwm2m.InstancePath(ObjectID, 2), []lwm2m.Entry{{Path: res(2, ResPackage), Value: lwm2m.Opaque(pkg)}}, false); err != nil {
		t.Fatal(err)
	}
	i := waitState(t, o, 2, StateDelivered)
	if i.Name != "meter-app" || i.Version != "1.2.0" || i.Result != ResultDelivered {
		t.Fatalf("delivered: %+v", i)
	}
	if err := o.Execute(res(2, ResInstall), ""); err != nil {
		t.Fatal(err)
	}
	i = waitState(t, o, 2, StateInstalled)
	if i.Result != ResultInstalled || i.Active {
		t.Fatalf("installed: %+v", i)
	}
	if b, err := os.ReadFile(i.Path); err != nil || string(b) != "the application" {
		t.Fatalf("installed file: %q %v", b, err)
	}
	// A second package is refused while one is installed (Uninstall "1" first).
	if err := o.Write(lwm2m.InstancePath(ObjectID, 2), []lwm2m.Entry{{Path: res(2, ResPackage), Value: lwm2m.Opaque(pkg)}}, false); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("a package over an installed application: %v", err)
	}
	for _, r := range []uint16{ResActivate, ResStart} {
		if err := o.Execute(res(2, r), ""); err != nil {
			t.Fatal(err)
		}
	}
	es, err := o.Read(lwm2m.InstancePath(ObjectID, 2))
	if err != nil {
		t.Fatal(err)
	}
	vals := map[uint16]string{}
	for _, e := range es {
		vals[e.Path.Resource()] = e.Value.Text()
	}
	if vals[ResActivationState] != "1" || vals[ResOperationalState] != "1" || vals[ResUpdateState] != "4" || vals[ResPkgName] != "meter-app" {
		t.Fatalf("read /9/2: %v", vals)
	}
	if err := o.Execute(res(2, ResUninstall), "7"); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("Uninstall with a bad argument: %v", err)
	}
	if err := o.Execute(res(2, ResUninstall), ""); err != nil {
		t.Fatal(err)
	}
	i = waitState(t, o, 2, StateInitial)
	if i.Name != "" || i.Active || i.Path != "" {
		t.Fatalf("after uninstall: %+v", i)
	}
	left, _ := os.ReadDir(filepath.Join(dir, "2"))
	for _, e := range left {
		if e.Name() != recordFile {
			t.Fatalf("after uninstall %s is still stored", e.Name())
		}
	}
	if err := o.Delete(2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "2")); !os.IsNotExist(err) {
		t.Fatalf("deleted instance's storage: %v", err)
	}
}

// Bad packages end the download with the right result and install nothing:
// a changed byte (53), another key's signature (53), not a package (54), a
// Package URI of another scheme (56).
func TestBadPackages(t *testing.T) {
	o := open(t, Config{Dir: t.TempDir(), TrustedKey: testPub})
	good := appPackage(t, app.KindBlob, "meter-app", "1", []byte("payload payload payload"))
	changed := bytes.Clone(good)
	changed[len(changed)-70] ^= 1
	_, otherKey, _ := ed25519.GenerateKey(nil)
	var other bytes.Buffer
	_ = app.Make(&other, app.KindBlob, "meter-app", "1", bytes.NewReader([]byte("x")), 1, sha256.Sum256([]byte("x")), otherKey)
	for i, c := range []struct {
		pkg  []byte
		want Result
	}{{changed, ResultIntegrity}, {other.Bytes(), ResultIntegrity}, {[]byte("not a package at all, just bytes"), ResultUnsupportedType}} {
		id := uint16(i)
		if err := o.Create(id, nil); err != nil {
			t.Fatal(err)
		}
		if err := o.Write(lwm2m.InstancePath(ObjectID, id), []lwm2m.Entry{{Path: res(id, ResPackage), Value: lwm2m.Opaque(c.pkg)}}, false); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			in := o.Apps()[i]
			if in.State == StateInitial && in.Result == c.want && in.Reason != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("case %d: %+v, want INITIAL with result %d and a reason", i, in, c.want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := o.Create(9, []lwm2m.Entry{{Path: res(9, ResPackageURI), Value: lwm2m.String("http://example.com/app")}}); err != nil {
		t.Fatal(err)
	}
	if in := o.Apps()[3]; in.State != StateInitial || in.Result != ResultInvalidURI {
		t.Fatalf("an http:// URI: %+v, want result 56", in)
	}
	// Without a trusted key a tree delta cannot be verified: refused (54).
	o2 := open(t, Config{Dir: t.TempDir()})
	_ = o2.Create(0, nil)
	treePkg := appPackage(t, app.KindTree, "assets", "2", []byte("FOTATREE..."))
	_ = o2.Write(lwm2m.InstancePath(ObjectID, 0), []lwm2m.Entry{{Path: res(0, ResPackage), Value: lwm2m.Opaque(treePkg)}}, false)
	deadline := time.Now().Add(10 * time.Second)
	for in := o2.Apps()[0]; in.Result != ResultUnsupportedType; in = o2.Apps()[0] {
		if time.Now().After(deadline) {
			t.Fatalf("a tree delta without a trusted key: %+v", in)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(o2.Apps()[0].Reason, "trusted key") {
		t.Fatalf("reason %q does not say what is missing", o2.Apps()[0].Reason)
	}
}

// The tree installer: an application shipped as a tree, installed from a
// tree delta against the empty tree, then updated by Uninstall "1" and a
// second tree delta; each install is cut by a simulated power cut at a
// different point, and the device's power-up (Open) finishes it: the
// installed tree is then exactly the new one.
func TestTreeInstallPowerCut(t *testing.T) {
	work := t.TempDir()
	empty, v1, v2 := filepath.Join(work, "empty"), filepath.Join(work, "v1"), filepath.Join(work, "v2")
	_ = os.MkdirAll(empty, 0o755)
	writeFiles(t, v1, map[string]string{"menu/main.json": `{"items":["a","b"]}`, "img/logo.svg": strings.Repeat("<path d='M0 0'/>", 200),
		"sounds/beep.raw": strings.Repeat("\x01\x02\x03", 3000), "theme.css": "body{color:#333}"})
	writeFiles(t, v2, map[string]string{"menu/main.json": `{"items":["a","b","c"]}`, "img/brand.svg": strings.Repeat("<path d='M0 0'/>", 200),
		"sounds/beep.raw": strings.Repeat("\x01\x02\x03", 3001), "lang/de.json": `{"hello":"hallo"}`})
	d1, err := tree.Make(empty, v1, testKey)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := tree.Make(v1, v2, testKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "device")
	for step, c := range []struct {
		delta []byte
		want  string
		cut   int
	}{{d1, v1, 3}, {d2, v2, 9}} {
		o, err := Open(Config{Dir: dir, TrustedKey: testPub, cutAfter: c.cut})
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			if err := o.Create(0, nil); err != nil {
				t.Fatal(err)
			}
		} else if err := o.Execute(res(0, ResUninstall), "1"); err != nil {
			t.Fatal(err)
		}
		pkg := appPackage(t, app.KindTree, "assets", "v"+string(rune('1'+step)), c.delta)
		if err := o.Write(lwm2m.InstancePath(ObjectID, 0), []lwm2m.Entry{{Path: res(0, ResPackage), Value: lwm2m.Opaque(pkg)}}, false); err != nil {
			t.Fatal(err)
		}
		waitState(t, o, 0, StateDelivered)
		if err := o.Execute(res(0, ResInstall), ""); err != nil {
			t.Fatal(err)
		}
		// The cut: the install goroutine stops, the record says Installing.
		deadline := time.Now().Add(10 * time.Second)
		for {
			rec, err := loadRecord(filepath.Join(dir, "0"))
			if err == nil && rec.Installing {
				if _, err := os.Stat(filepath.Join(dir, "0", treeDir, tree.JournalDir)); err == nil {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the cut install left no journal")
			}
			time.Sleep(5 * time.Millisecond)
		}
		o.Close()
		if i := o.Apps()[0]; i.State != StateDelivered {
			t.Fatalf("step %d: a cut install reports %v", step, i.State)
		}
		// Power-up.
		o2, err := Open(Config{Dir: dir, TrustedKey: testPub})
		if err != nil {
			t.Fatal(err)
		}
		i := waitState(t, o2, 0, StateInstalled)
		o2.Close()
		if i.Version != "v"+string(rune('1'+step)) || i.Result != ResultInstalled {
			t.Fatalf("step %d after power-up: %+v", step, i)
		}
		sameTree(t, i.Path, c.want)
	}
}

// Records read back at power-up are checked: a corrupt one is an error
// naming it, not a panic or a silent reset.
func TestCorruptRecordRefused(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "4"), 0o700)
	_ = os.WriteFile(filepath.Join(dir, "4", recordFile), []byte(`{"state":9}`), 0o600)
	if _, err := Open(Config{Dir: dir}); !errors.Is(err, errBadRecord) {
		t.Fatalf("Open over a record with state 9: %v", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"state":4,"result":2,"name":"a","version":"1","done":10}`))
	f.Add([]byte(`{"state":1,"method":"pull","uri":"coaps://h/sw/1","block_size":512,"done":1024}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if r.State < StateInitial || r.State > StateInstalled || r.Done < 0 {
			t.Fatalf("accepted %+v", r)
		}
	})
}
