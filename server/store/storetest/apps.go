package storetest

import (
	"bytes"
	"sync"
	"testing"

	"github.com/fotastack/fota/server/store"
)

// putApp stores data as a blob and an app of it.
func putApp(t *testing.T, s store.Store, name, version string, data []byte) store.App {
	t.Helper()
	sum, n, err := s.PutBlob(bytes.NewReader(data), 1<<30)
	must(t, err)
	a, err := s.AddApp(store.App{ID: name + "@" + version, Name: name, Version: version, Size: int(n), SHA256: sum, Created: now})
	must(t, err)
	return a
}

func testApps(t *testing.T, b Backend) {
	s := open(t, b)
	m1 := putApp(t, s, "meter-app", "1.2.0", []byte("meter app one"))
	m2 := putApp(t, s, "meter-app", "1.3.0", []byte("meter app two"))
	got, err := s.App(m1.ID)
	must(t, err)
	if got != m1 || got.Name != "meter-app" || got.Version != "1.2.0" || got.Size != 13 || !got.Created.Equal(now) {
		t.Fatalf("app %+v, put %+v", got, m1)
	}
	_, err = s.App("nope")
	wantErr(t, "unknown app", err, store.ErrNotFound)
	_, err = s.AddApp(store.App{ID: m1.ID, Name: "other", Version: "9", SHA256: m1.SHA256})
	wantErr(t, "the same ID twice", err, store.ErrExists)
	_, err = s.AddApp(store.App{ID: "another-id", Name: "meter-app", Version: "1.2.0", SHA256: m1.SHA256})
	wantErr(t, "the same name and version twice", err, store.ErrExists)
	_, err = s.AddApp(store.App{ID: "no-blob", Name: "x", Version: "1", SHA256: sha([]byte("never stored"))})
	wantErr(t, "an app without its blob", err, store.ErrNotFound)
	apps, err := s.Apps()
	must(t, err)
	if len(apps) != 2 {
		t.Fatalf("%d apps, want 2", len(apps))
	}
	// An image shares m1's bytes: deleting the app keeps the blob; deleting
	// m2 (bytes of its own) removes its blob.
	img := putImage(t, s, "meter", "1", []byte("meter app one"))
	must(t, s.DeleteApp(m1.ID))
	wantErr(t, "a deleted app", s.DeleteApp(m1.ID), store.ErrNotFound)
	if _, err := s.OpenBlob(img.SHA256); err != nil {
		t.Fatalf("the blob an image still uses went with the app: %v", err)
	}
	must(t, s.DeleteApp(m2.ID))
	_, err = s.OpenBlob(m2.SHA256)
	wantErr(t, "the blob of a deleted app", err, store.ErrNotFound)
	// And the other way round: an image deleted keeps the blob of an app.
	m3 := putApp(t, s, "meter-app", "2.0.0", []byte("shared bytes"))
	img2 := putImage(t, s, "meter", "2", []byte("shared bytes"))
	_, err = s.DeleteImage(img2.ID)
	must(t, err)
	if _, err := s.OpenBlob(m3.SHA256); err != nil {
		t.Fatalf("the blob an app still uses went with the image: %v", err)
	}
}

// testConcurrentApps: of many adds of one name and version at once, on
// one store, exactly one wins.
func testConcurrentApps(t *testing.T, b Backend) {
	s := open(t, b)
	sum, n, err := s.PutBlob(bytes.NewReader([]byte("racing app")), 1<<20)
	must(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.AddApp(store.App{ID: "race-" + string(rune('a'+i)), Name: "race", Version: "1", Size: int(n), SHA256: sum, Created: now})
			if err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d of 8 concurrent adds of one name and version succeeded, want 1", won)
	}
}
