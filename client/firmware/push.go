package firmware

import (
	"fmt"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// pushState is the Block1 transfer in progress (RFC 7959 2.5): the offset
// of the next block expected and the block size in use.
type pushState struct {
	active bool
	next   int64
	size   int
}

var packagePath = lwm2m.ResourcePath(ObjectID, 0, ResPackage)

// Handles implements client.RawHandler: writes of Package (/5/0/0) come
// to ServeLwM2M untouched, one Block1 block at a time.
func (o *Object) Handles(p lwm2m.Path, code codes.Code) bool {
	return p == packagePath && (code == codes.PUT || code == codes.POST)
}

// ServeLwM2M implements client.RawHandler: the push delivery of LwM2M Core
// E.6 (a Write of the package to /5/0/0), streamed into the staging area
// as the blocks arrive, never held whole in RAM. Each block is answered
// 2.31 Continue, the last 2.04 Changed (RFC 7959 2.3). A block that is not
// the next one is refused with 4.08 Request Entity Incomplete carrying, in
// its Block1 option, the block the device expects: after a connection loss
// or a reboot the server continues there (the bytes received survive in
// the progress record). A block already received is acknowledged again
// without being written (a duplicate on a lossy link).
func (o *Object) ServeLwM2M(w mux.ResponseWriter, r *mux.Message, p lwm2m.Path) {
	pw, ok := client.ReadPackageWrite(w, r, o.st.size())
	if !ok {
		return
	}
	if !pw.Blocked {
		if err := o.writeWhole(pw.Body); err != nil {
			client.Respond(w, lwm2m.CodeOf(err), err.Error())
			return
		}
		client.Respond(w, codes.Changed, "")
		return
	}
	code, echo, msg := o.pushBlock(pw.SZX, pw.Num, pw.More, pw.Size, pw.Size1, pw.Body)
	next := int64(-1)
	if code == codes.RequestEntityIncomplete {
		if n, ok := o.expectedBlock(pw.Size); ok {
			next = n
		}
	}
	pw.AnswerBlock(w, code, echo, next, msg, o.st.size())
}

// pushBlock applies one Block1 block and returns the answer: the code,
// whether to echo the request's Block1 option, and a diagnostic.
func (o *Object) pushBlock(szx blockwise.SZX, num int64, more bool, size int, size1 int64, body []byte) (codes.Code, bool, string) {
	o.log.Debug("firmware push block", "num", num, "more", more, "size", size, "len", len(body))
	o.mu.Lock()
	defer o.unlock()
	if more && len(body) != size {
		// RFC 7959 2.2: every block but the last carries exactly size bytes.
		return codes.BadRequest, false, fmt.Sprintf("block %d has %d bytes, size %d", num, len(body), size)
	}
	off := num * int64(size)
	if num == 0 {
		if size1 == 0 || (size1 < 0 && !more && len(body) == 0) {
			if err := o.rec.State.handler().reset(o); err != nil {
				return lwm2m.CodeOf(err), false, err.Error()
			}
			return codes.Changed, true, ""
		}
		if err := o.rec.State.handler().writePackage(o); err != nil {
			return lwm2m.CodeOf(err), false, err.Error()
		}
		o.push.size = size
		// RFC 7959 4: Size1 announces the whole size; refuse at once what
		// cannot fit rather than after it has been sent (result 2).
		if size1 > o.st.size() {
			o.enter(StateIdle, ResultNotEnoughFlash)
			o.push = pushState{}
			return codes.RequestEntityTooLarge, false, fmt.Sprintf("package of %d bytes, staging area %d", size1, o.st.size())
		}
		if size1 > 0 {
			o.rec.Total = size1
		}
	}
	if o.rec.State != StateDownloading || !o.push.active {
		return codes.RequestEntityIncomplete, false, fmt.Sprintf("no package transfer in progress (state %v): start at block 0", o.rec.State)
	}
	switch {
	case off < o.push.next && off+int64(len(body)) <= o.push.next && more:
		return codes.Continue, true, "" // already stored
	case off != o.push.next:
		return o.incomplete(size)
	}
	if off+int64(len(body)) > o.st.size() {
		o.clearDownload()
		o.enter(StateIdle, ResultNotEnoughFlash)
		return codes.RequestEntityTooLarge, false, fmt.Sprintf("package exceeds the %d-byte staging area", o.st.size())
	}
	o.flashMu.Lock()
	err := o.st.write(off, body)
	o.flashMu.Unlock()
	if err != nil {
		o.log.Warn("firmware: stage pushed block", "block", num, "err", err)
		o.clearDownload()
		o.enter(StateIdle, ResultNotEnoughFlash)
		return codes.InternalServerError, false, err.Error()
	}
	o.push.next = off + int64(len(body))
	o.push.size = size
	o.rec.Done, o.rec.BlockSize = o.push.next, size
	if !more {
		o.rec.Total = o.rec.Done
		o.push = pushState{}
		o.finishDownload()
		return codes.Changed, true, ""
	}
	o.save()
	return codes.Continue, true, ""
}

// expectedBlock is the number of the next block of a push in progress.
func (o *Object) expectedBlock(size int) (int64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.push.active || o.rec.State != StateDownloading {
		return 0, false
	}
	return o.push.next / int64(size), true
}

// incomplete answers 4.08 with the Block1 option of the block expected.
func (o *Object) incomplete(size int) (codes.Code, bool, string) {
	return codes.RequestEntityIncomplete, false, fmt.Sprintf("expected block %d (byte %d)", o.push.next/int64(size), o.push.next)
}

// startPush begins a Block1 transfer at block 0. The caller holds mu.
func (o *Object) startPush() {
	o.clearDownload()
	o.rec.Method = methodPush
	o.push = pushState{active: true}
	o.enter(StateDownloading, ResultInitial)
}

// writeWhole is a package written in one request (no Block1): small
// packages, or a TLV/SenML write of the instance.
func (o *Object) writeWhole(b []byte) error {
	o.mu.Lock()
	defer o.unlock()
	h := o.rec.State.handler()
	if len(b) == 0 {
		return h.reset(o)
	}
	if err := h.writePackage(o); err != nil {
		return err
	}
	o.push = pushState{}
	if int64(len(b)) > o.st.size() {
		o.clearDownload()
		o.enter(StateIdle, ResultNotEnoughFlash)
		return lwm2m.NewError(codes.RequestEntityTooLarge, "package of %d bytes, staging area %d", len(b), o.st.size())
	}
	o.flashMu.Lock()
	err := o.st.write(0, b)
	o.flashMu.Unlock()
	if err != nil {
		o.clearDownload()
		o.enter(StateIdle, ResultNotEnoughFlash)
		return fmt.Errorf("stage package: %w", err)
	}
	o.rec.Done, o.rec.Total = int64(len(b)), int64(len(b))
	o.finishDownload()
	return nil
}
