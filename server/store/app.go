package store

import "time"

// App is one version of an application in the application repository
// (Software Management, LwM2M object 9): its bytes are a blob (SHA256).
type App struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Version string    `json:"version"`
	Size    int       `json:"size"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

// AppStore keeps the application repository beside the firmware one; the
// bytes are blobs of the same BlobStore, so a blob an image and an
// application share is stored once and removed only when neither uses it.
type AppStore interface {
	BlobStore

	// AddApp stores a, whose bytes must already be a blob (PutBlob,
	// a.SHA256). An app with a.ID, or with a.Name and a.Version, already
	// stored is refused with ErrExists.
	AddApp(a App) (App, error)
	// App returns the app with this ID, or ErrNotFound.
	App(id string) (App, error)
	// Apps returns all apps, in no set order.
	Apps() ([]App, error)
	// DeleteApp removes an app and its blob if no image, package or other
	// app uses it, in one atomic step; ErrNotFound if there is none.
	DeleteApp(id string) error
}
