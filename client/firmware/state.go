package firmware

import (
	"fmt"

	"github.com/fotastack/fota/client"
)

// State is the Firmware Update State resource (/5/0/3, LwM2M Core E.6).
type State int

// The states of LwM2M Core E.6.
const (
	StateIdle        State = 0
	StateDownloading State = 1
	StateDownloaded  State = 2
	StateUpdating    State = 3
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateDownloading:
		return "downloading"
	case StateDownloaded:
		return "downloaded"
	case StateUpdating:
		return "updating"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Result is the Update Result resource (/5/0/5, LwM2M Core E.6).
type Result int

// The update results of LwM2M Core E.6, object version 1.1.
const (
	ResultInitial             Result = 0
	ResultSuccess             Result = 1
	ResultNotEnoughFlash      Result = 2
	ResultOutOfRAM            Result = 3
	ResultConnectionLost      Result = 4
	ResultIntegrityFailure    Result = 5
	ResultUnsupportedType     Result = 6
	ResultInvalidURI          Result = 7
	ResultUpdateFailed        Result = 8
	ResultUnsupportedProtocol Result = 9
	ResultCancelled           Result = 10
	ResultDeferred            Result = 11
)

var resultNames = [...]string{"initial", "success", "not enough flash", "out of RAM",
	"connection lost during download", "integrity check failure", "unsupported package type",
	"invalid URI", "update failed", "unsupported protocol", "cancelled", "deferred"}

func (r Result) String() string {
	if r >= 0 && int(r) < len(resultNames) {
		return resultNames[r]
	}
	return fmt.Sprintf("result(%d)", int(r))
}

// The state machine of LwM2M Core E.6 (Figure "Firmware Update State
// diagram"), one handler per state in the spirit of pion/dtls's flight
// handlers: what each state does with each event is written where its name
// says. Every handler runs with o.mu held and returns the error the server
// gets (nil for 2.04); transitions go through o.enter, which persists the
// record and notifies observers.
type stateHandler interface {
	// writePackage: the first block (or the whole) of a pushed package.
	writePackage(o *Object) error
	// writeURI: a non-empty Package URI was written.
	writeURI(o *Object, uri string) error
	// reset: an empty Package or Package URI was written.
	reset(o *Object) error
	// update: Update (/5/0/2) was executed.
	update(o *Object) error
	// cancel: Cancel (/5/0/10) was executed.
	cancel(o *Object) error
}

func (s State) handler() stateHandler {
	switch s {
	case StateDownloading:
		return downloading{}
	case StateDownloaded:
		return downloaded{}
	case StateUpdating:
		return updating{}
	}
	return idle{}
}

func notAllowed(op string, s State) error {
	return fmt.Errorf("%s in state %v: %w", op, s, client.ErrNotAllowed)
}

// idle: nothing staged. A package write or a URI write starts a download.
type idle struct{}

func (idle) writePackage(o *Object) error {
	o.startPush()
	return nil
}

func (idle) writeURI(o *Object, uri string) error { return o.startPull(uri) }

// LwM2M Core E.6: writing an empty string to Package URI or an empty
// Package resets the state machine to Idle and the Update Result to 0.
func (idle) reset(o *Object) error {
	o.clearDownload()
	o.enter(StateIdle, ResultInitial)
	return nil
}

func (idle) update(o *Object) error { return notAllowed("update", StateIdle) }

// Cancel in Idle has nothing to cancel (LwM2M Core E.6, resource 10: only
// Downloading and Downloaded may be cancelled).
func (idle) cancel(o *Object) error { return notAllowed("cancel", StateIdle) }

// downloading: bytes are arriving (push) or being fetched (pull).
type downloading struct{}

// A new Block1 transfer starting at block 0 replaces the one in progress:
// the server restarted its push.
func (downloading) writePackage(o *Object) error {
	o.stopPull()
	o.startPush()
	return nil
}

// A new URI replaces the download in progress.
func (downloading) writeURI(o *Object, uri string) error {
	o.stopPull()
	return o.startPull(uri)
}

func (downloading) reset(o *Object) error {
	o.stopPull()
	o.clearDownload()
	o.enter(StateIdle, ResultInitial)
	return nil
}

func (downloading) update(o *Object) error { return notAllowed("update", StateDownloading) }

// LwM2M Core E.6, resource 10: Cancel stops the download; State Idle,
// Update Result 10.
func (downloading) cancel(o *Object) error {
	o.stopPull()
	o.clearDownload()
	o.enter(StateIdle, ResultCancelled)
	return nil
}

// downloaded: a complete package is staged and verified.
type downloaded struct{}

// LwM2M Core E.6: in Downloaded, only a reset or Update is expected; a new
// package write first needs the reset.
func (downloaded) writePackage(o *Object) error {
	return notAllowed("write package", StateDownloaded)
}
func (downloaded) writeURI(o *Object, uri string) error {
	return notAllowed("write package URI", StateDownloaded)
}

func (downloaded) reset(o *Object) error {
	o.clearDownload()
	o.enter(StateIdle, ResultInitial)
	return nil
}

// Update: State Updating, then the installer runs in a goroutine the object
// owns (the CoAP handler must answer at once, ../shared/notes trap 9). The
// device may defer (Update Result 11, LwM2M Core E.6 resources 11 and 13):
// it stays Downloaded and installs by itself when the deferral ends.
func (downloaded) update(o *Object) error {
	if d := o.deferral(); d > 0 {
		o.enter(StateDownloaded, ResultDeferred)
		o.scheduleDeferred(d)
		return nil
	}
	o.startInstall()
	return nil
}

func (downloaded) cancel(o *Object) error {
	o.clearDownload()
	o.enter(StateIdle, ResultCancelled)
	return nil
}

// updating: the installer runs; the server can only watch.
type updating struct{}

func (updating) writePackage(o *Object) error {
	return notAllowed("write package", StateUpdating)
}
func (updating) writeURI(o *Object, uri string) error {
	return notAllowed("write package URI", StateUpdating)
}
func (updating) reset(o *Object) error  { return notAllowed("reset", StateUpdating) }
func (updating) update(o *Object) error { return notAllowed("update", StateUpdating) }
func (updating) cancel(o *Object) error { return notAllowed("cancel", StateUpdating) }
