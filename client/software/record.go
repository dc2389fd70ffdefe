package software

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Files of one instance, in Config.Dir/<instance>/.
const (
	recordFile  = "record.json"
	packageFile = "package" // the package as downloaded (kept until uninstall)
	blobFile    = "app.bin" // an installed KindBlob application
	treeDir     = "tree"    // an installed KindTree application's directory
)

// maxRecordSize bounds a record read back at power-up.
const maxRecordSize = 16 << 10

// Delivery of the package being downloaded.
const (
	methodNone = ""
	methodPush = "push"
	methodPull = "pull"
)

// record is what one instance keeps across a reboot: the state machine's
// position, the download's progress and what is installed.
type record struct {
	State  State  `json:"state"`
	Result Result `json:"result"`
	// Name and Version are the package's (from its header), reported in
	// /9/x/0 and /9/x/1 once it is delivered; an installed application's
	// name and version stay while a new package for it downloads.
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	Kind    byte   `json:"kind"`
	Active  bool   `json:"active,omitempty"`
	Running bool   `json:"running,omitempty"`
	// Installed: the application's files are in place (app.bin or tree/).
	Installed bool `json:"installed,omitempty"`
	// Installing: an install started and has not ended (a tree delta is
	// resumed from its journal at power-up).
	Installing bool `json:"installing,omitempty"`
	// ForUpdate: Uninstall "1" kept the installed application for the
	// next package to update.
	ForUpdate bool   `json:"for_update,omitempty"`
	Reason    string `json:"reason,omitempty"` // Status Reason (/9/x/16)
	Supported bool   `json:"supported,omitempty"`

	Method    string `json:"method,omitempty"`
	URI       string `json:"uri,omitempty"`
	ETag      []byte `json:"etag,omitempty"`
	Done      int64  `json:"done"`
	Total     int64  `json:"total,omitempty"`
	BlockSize int    `json:"block_size,omitempty"`
}

var errBadRecord = errors.New("software: bad instance record")

func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) > maxRecordSize {
		return r, fmt.Errorf("%w: %d bytes", errBadRecord, len(b))
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	switch {
	case r.State < StateInitial || r.State > StateInstalled:
		return record{}, fmt.Errorf("%w: state %d", errBadRecord, r.State)
	case r.Method != methodNone && r.Method != methodPush && r.Method != methodPull:
		return record{}, fmt.Errorf("%w: method %q", errBadRecord, r.Method)
	case r.Done < 0 || r.Total < 0:
		return record{}, fmt.Errorf("%w: %d of %d bytes", errBadRecord, r.Done, r.Total)
	case r.BlockSize != 0 && (r.BlockSize < 16 || r.BlockSize > 1024 || r.BlockSize&(r.BlockSize-1) != 0):
		return record{}, fmt.Errorf("%w: block size %d", errBadRecord, r.BlockSize)
	case len(r.URI) > maxURILen || len(r.ETag) > 8:
		return record{}, fmt.Errorf("%w: URI or ETag too long", errBadRecord)
	}
	return r, nil
}

func loadRecord(dir string) (record, error) {
	f, err := os.Open(filepath.Join(dir, recordFile))
	if err != nil {
		return record{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return record{}, fmt.Errorf("software: read %s: %w", f.Name(), err)
	}
	return decodeRecord(b)
}

// saveRecord writes r atomically (temporary file, rename); sync adds an
// fsync, for state changes.
func saveRecord(dir string, r record, sync bool) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, recordFile), b, sync)
}

func writeAtomic(path string, b []byte, sync bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("software: save %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(b); err == nil && sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("software: save %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("software: save %s: %w", path, err)
	}
	return nil
}
