package firmware

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// recordFile is the name of the progress record in the state directory.
const recordFile = "firmware-update.json"

// maxRecordSize bounds the record read back at power-up: it is a few
// hundred bytes, and a corrupt or hostile file must not make us allocate.
const maxRecordSize = 16 << 10

// Delivery of the package being downloaded.
const (
	methodNone = ""
	methodPush = "push"
	methodPull = "pull"
)

// record is what survives a reboot: the state machine's position and the
// download's progress. The staged bytes themselves are in the flash's
// staging area; Done counts those that are there for sure (the record is
// written after the flash program returns).
type record struct {
	State  State  `json:"state"`
	Result Result `json:"result"`
	Method string `json:"method,omitempty"`
	URI    string `json:"uri,omitempty"`
	ETag   []byte `json:"etag,omitempty"`
	// Done is the number of package bytes in staging; Total is the
	// package size when known (Size1/Size2 options, or at the end).
	Done  int64 `json:"done"`
	Total int64 `json:"total,omitempty"`
	// BlockSize is the transfer's block size (push: the server's, pull:
	// the one in use), so a resume continues at Done/BlockSize.
	BlockSize int `json:"block_size,omitempty"`

	PkgName    string    `json:"pkg_name,omitempty"`
	PkgVersion string    `json:"pkg_version,omitempty"`
	Severity   int       `json:"severity"`
	MaxDefer   int64     `json:"max_defer,omitempty"` // seconds, /5/0/13
	LastChange time.Time `json:"last_change"`
	// DeferUntil: Update was deferred (result 11) until then.
	DeferUntil time.Time `json:"defer_until,omitzero"`
	// FromVersion is the version that ran when Update started; a reboot
	// in state Updating compares it with what boots.
	FromVersion string `json:"from_version,omitempty"`
}

// Severity values of /5/0/11 (LwM2M Core E.6).
const (
	SeverityCritical = 0
	SeverityMajor    = 1
	SeverityMinor    = 2
)

// errBadRecord wraps every reason a stored record is refused.
var errBadRecord = errors.New("firmware: bad progress record")

// decodeRecord parses and checks a stored record.
func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) > maxRecordSize {
		return r, fmt.Errorf("%w: %d bytes, limit %d", errBadRecord, len(b), maxRecordSize)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	switch {
	case r.State < StateIdle || r.State > StateUpdating:
		return record{}, fmt.Errorf("%w: state %d", errBadRecord, r.State)
	case r.Result < ResultInitial || r.Result > ResultDeferred:
		return record{}, fmt.Errorf("%w: result %d", errBadRecord, r.Result)
	case r.Method != methodNone && r.Method != methodPush && r.Method != methodPull:
		return record{}, fmt.Errorf("%w: method %q", errBadRecord, r.Method)
	case r.Done < 0 || r.Total < 0 || (r.Total > 0 && r.Done > r.Total):
		return record{}, fmt.Errorf("%w: %d of %d bytes", errBadRecord, r.Done, r.Total)
	case r.BlockSize != 0 && (r.BlockSize < 16 || r.BlockSize > 1024 || r.BlockSize&(r.BlockSize-1) != 0):
		return record{}, fmt.Errorf("%w: block size %d", errBadRecord, r.BlockSize)
	case len(r.ETag) > 8:
		return record{}, fmt.Errorf("%w: ETag of %d bytes (RFC 7252 5.10.6: at most 8)", errBadRecord, len(r.ETag))
	case len(r.URI) > maxURILen:
		return record{}, fmt.Errorf("%w: URI of %d bytes", errBadRecord, len(r.URI))
	case r.Severity < SeverityCritical || r.Severity > SeverityMinor:
		return record{}, fmt.Errorf("%w: severity %d", errBadRecord, r.Severity)
	case r.MaxDefer < 0:
		return record{}, fmt.Errorf("%w: maximum defer period %d", errBadRecord, r.MaxDefer)
	}
	return r, nil
}

// loadRecord reads the record from dir; a missing file is a fresh device.
func loadRecord(dir string) (record, error) {
	f, err := os.Open(filepath.Join(dir, recordFile))
	if errors.Is(err, os.ErrNotExist) {
		return record{Severity: SeverityMajor}, nil
	}
	if err != nil {
		return record{}, fmt.Errorf("firmware: open progress record: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return record{}, fmt.Errorf("firmware: read progress record: %w", err)
	}
	return decodeRecord(b)
}

// saveRecord writes r atomically: a temporary file, rename. A crash leaves
// the old record or the new one, never a torn one. sync adds an fsync
// before the rename, for state changes; per-block progress goes without
// (11 ms a block here): the flash file is not synced either, so a sync
// would order nothing, and a record that lags only costs re-fetching a
// block whose bytes are programmed again unchanged.
func saveRecord(dir string, r record, sync bool) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("firmware: encode progress record: %w", err)
	}
	tmp, err := os.CreateTemp(dir, recordFile+".*")
	if err != nil {
		return fmt.Errorf("firmware: save progress record: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err = tmp.Write(b); err == nil && sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("firmware: save progress record: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, recordFile)); err != nil {
		return fmt.Errorf("firmware: save progress record: %w", err)
	}
	return nil
}
