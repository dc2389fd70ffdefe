package software

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// pushState is a Block1 transfer in progress: the next offset expected
// and the block size in use.
type pushState struct {
	active bool
	next   int64
	size   int
}

// Handles implements client.RawHandler: writes of Package (/9/x/2) come
// one Block1 block at a time.
func (o *Object) Handles(p lwm2m.Path, code codes.Code) bool {
	return p.Len() == 3 && p.Resource() == ResPackage && (code == codes.PUT || code == codes.POST)
}

// ServeLwM2M implements client.RawHandler: the push delivery, each block
// appended to the instance's package file as it arrives (never the whole
// package in RAM), 2.31 Continue for each but the last, 4.08 with the
// expected block for one out of order (a resume after a lost connection
// or a reboot), a duplicate acknowledged without being written.
func (o *Object) ServeLwM2M(w mux.ResponseWriter, r *mux.Message, p lwm2m.Path) {
	pw, ok := client.ReadPackageWrite(w, r, o.cfg.MaxPackage)
	if !ok {
		return
	}
	if !pw.Blocked {
		o.mu.Lock()
		in := o.insts[p.Instance()]
		var err error
		if in == nil {
			err = fmt.Errorf("%v: %w", p, client.ErrNotFound)
		} else {
			err = o.writeWhole(in, pw.Body)
		}
		o.unlock()
		if err != nil {
			client.Respond(w, lwm2m.CodeOf(err), err.Error())
			return
		}
		client.Respond(w, codes.Changed, "")
		return
	}
	code, echo, next, msg := o.pushBlock(p.Instance(), pw.Num, pw.More, pw.Size, pw.Size1, pw.Body)
	if next >= 0 {
		next /= int64(pw.Size) // pushBlock gives the byte expected
	}
	pw.AnswerBlock(w, code, echo, next, msg, o.cfg.MaxPackage)
}

// pushBlock stores one block; it returns the answer's code, whether to
// echo Block1, the offset expected (for a 4.08; -1 if none) and a message.
func (o *Object) pushBlock(id uint16, num int64, more bool, size int, size1 int64, body []byte) (codes.Code, bool, int64, string) {
	o.mu.Lock()
	defer o.unlock()
	in := o.insts[id]
	if in == nil {
		return codes.NotFound, false, -1, fmt.Sprintf("no instance /9/%d", id)
	}
	if more && len(body) != size {
		return codes.BadRequest, false, -1, fmt.Sprintf("block %d has %d bytes, size %d", num, len(body), size)
	}
	off := num * int64(size)
	if num == 0 && !(in.push.active && in.push.next > 0 && more) {
		if err := o.canDownload(in); err != nil {
			return lwm2m.CodeOf(err), false, -1, err.Error()
		}
		if size1 > o.cfg.MaxPackage {
			o.fail(in, ResultNoStorage, fmt.Sprintf("package of %d bytes, room for %d", size1, o.cfg.MaxPackage))
			return codes.RequestEntityTooLarge, false, -1, in.rec.Reason
		}
		o.dropDownload(in, false)
		in.rec.Method, in.rec.URI, in.rec.Reason = methodPush, "", ""
		in.push = pushState{active: true, size: size}
		o.enter(in, StateDownloadStarted, ResultDownloading)
	}
	if in.rec.State != StateDownloadStarted || !in.push.active {
		return codes.RequestEntityIncomplete, false, -1, fmt.Sprintf("no package transfer in progress (state %v): start at block 0", in.rec.State)
	}
	switch {
	case off < in.push.next && off+int64(len(body)) <= in.push.next && more:
		return codes.Continue, true, -1, "" // a duplicate: stored already
	case off != in.push.next:
		return codes.RequestEntityIncomplete, false, in.push.next, fmt.Sprintf("expected byte %d", in.push.next)
	}
	if off+int64(len(body)) > o.cfg.MaxPackage {
		o.fail(in, ResultNoStorage, fmt.Sprintf("package exceeds the %d bytes of room", o.cfg.MaxPackage))
		return codes.RequestEntityTooLarge, false, -1, in.rec.Reason
	}
	if err := writePackageAt(in.dir, off, body); err != nil {
		o.fail(in, ResultNoStorage, err.Error())
		return codes.InternalServerError, false, -1, err.Error()
	}
	in.push.next, in.push.size = off+int64(len(body)), size
	in.rec.Done, in.rec.BlockSize = in.push.next, size
	if !more {
		o.finishDownload(in)
		return codes.Changed, true, -1, ""
	}
	o.persist(in, false)
	return codes.Continue, true, -1, ""
}

// writeWhole is a package written in one request (no Block1). The caller
// holds mu.
func (o *Object) writeWhole(in *instance, b []byte) error {
	if err := o.canDownload(in); err != nil {
		return err
	}
	o.dropDownload(in, false)
	in.rec.URI = ""
	if len(b) == 0 {
		o.enter(in, StateInitial, ResultInitial)
		return nil
	}
	if int64(len(b)) > o.cfg.MaxPackage {
		o.fail(in, ResultNoStorage, fmt.Sprintf("package of %d bytes, room for %d", len(b), o.cfg.MaxPackage))
		return lwm2m.NewError(codes.RequestEntityTooLarge, "%s", in.rec.Reason)
	}
	in.rec.Method = methodPush
	o.enter(in, StateDownloadStarted, ResultDownloading)
	if err := writePackageAt(in.dir, 0, b); err != nil {
		o.fail(in, ResultNoStorage, err.Error())
		return fmt.Errorf("store package: %w", err)
	}
	in.rec.Done = int64(len(b))
	o.finishDownload(in)
	return nil
}

// writePackageAt writes p at off of the instance's package file, cutting
// off what lay beyond (bytes of an older transfer).
func writePackageAt(dir string, off int64, p []byte) error {
	f, err := os.OpenFile(filepath.Join(dir, packageFile), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store package: %w", err)
	}
	if err := f.Truncate(off); err != nil {
		f.Close()
		return fmt.Errorf("store package: %w", err)
	}
	if _, err := f.WriteAt(p, off); err != nil {
		f.Close()
		return fmt.Errorf("store package: %w", err)
	}
	return f.Close()
}
