package firmware

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"github.com/fotastack/fota/server/transport"
)

// handleDownload serves GET /fw/{packageID}: the package by Block2 (RFC
// 7959) with its ETag, on the DM listeners, so a device pulls it over the
// DTLS session it registered with (LwM2M Core E.6, Package URI).
//
// Memory: the response body is a reader over the one shared in-memory copy
// of the package (PackageData), never a per-device copy. go-coap's
// blockwise layer, which the listeners enable, would take over any body of
// a block's size or more, so the body is the whole package: that layer
// keeps the (shared) reader for the transfer and cuts each block from it
// at the offset the request's Block2 option names; when its transfer state
// expired (trap 3 of the go-coap notes) this handler runs again and costs
// a map lookup, not a regeneration. The block requested is checked here
// first (block2Range), so a request past the end gets 4.02 instead of an
// empty block. What remains of trap 4 is go-coap's per-message-ID cache of
// sent responses (one block each, kept for the exchange lifetime), which
// belongs to the transport's connection options.
func (f *Repository) handleDownload(w mux.ResponseWriter, r *mux.Message, args []string) {
	p, err := f.Package(args[0])
	if err != nil {
		_ = w.SetResponse(codes.NotFound, message.TextPlain, bytes.NewReader([]byte("no such package")))
		return
	}
	blob, err := f.packageBlob(p)
	if err != nil {
		f.dm.Logger().Error("firmware download", "package", p.ID, "err", err)
		_ = w.SetResponse(codes.InternalServerError, message.TextPlain, nil)
		return
	}
	size := int(blob.Size())
	etag := p.ETag()
	// RFC 7252 5.10.6.2: an ETag in a GET asks whether that representation
	// is still current; 2.03 Valid lets the device keep what it has.
	tags := make([][]byte, 8)
	if n, _ := r.Options().GetBytess(message.ETag, tags); n > 0 {
		for _, t := range tags[:n] {
			if bytes.Equal(t, etag) {
				_ = w.SetResponse(codes.Valid, message.AppOctets, nil)
				w.Message().SetOptionBytes(message.ETag, etag)
				return
			}
		}
	}
	ep := ""
	if d := f.dm.DeviceOfSession(transport.SessionFrom(r.Context())); d != nil {
		ep = d.Endpoint()
	}
	if !f.sameDomain(ep, p) {
		// Another domain's package answers as one that does not exist:
		// nothing of it leaks, not even that it is there.
		f.dm.Logger().Warn("firmware download refused: the package is another domain's", "endpoint", ep, "package", p.ID)
		_ = w.SetResponse(codes.NotFound, message.TextPlain, bytes.NewReader([]byte("no such package")))
		return
	}
	if v, err := r.Options().GetUint32(message.Block2); err == nil {
		if _, _, err := block2Range(v, size); err != nil {
			_ = w.SetResponse(codes.BadOption, message.TextPlain, bytes.NewReader([]byte(err.Error())))
			return
		}
	}
	body := &trackedReader{data: blob, size: int64(size)}
	body.onRead = func(n, end int) {
		f.blocksServed.Add(1)
		f.bytesServed.Add(int64(n))
		if ep != "" {
			f.progress.set(ep, p.ID, end)
		}
	}
	_ = w.SetResponse(codes.Content, message.AppOctets, body)
	w.Message().SetOptionBytes(message.ETag, etag)
	w.Message().SetOptionUint32(message.Size2, uint32(size))
}

// block2Range is the byte range [off, off+n) of a representation of size
// bytes that a Block2 option value asks for (RFC 7959 2.2), or an error for
// a malformed option or a block past the end.
func block2Range(v uint32, size int) (off, n int, err error) {
	szx, num, _, err := blockwise.DecodeBlockOption(v)
	if err != nil || szx > blockwise.SZX1024 {
		return 0, 0, fmt.Errorf("bad Block2 option %#x", v)
	}
	o := num * szx.Size()
	if o > int64(size) || (o == int64(size) && size > 0) {
		return 0, 0, fmt.Errorf("block %d is past the end of %d bytes", num, size)
	}
	return int(o), min(int(szx.Size()), size-int(o)), nil
}

// trackedReader reads a stored package by range (io.ReaderAt: each read
// takes only the bytes of one block from the store, never the whole
// package) and reports how far a transfer has read, so download progress
// is known without the device telling it.
type trackedReader struct {
	mu     sync.Mutex
	data   io.ReaderAt
	size   int64
	pos    int64
	onRead func(n, end int) // bytes read now, and the offset reached
}

func (t *trackedReader) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pos >= t.size {
		return 0, io.EOF
	}
	if rest := t.size - t.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := t.data.ReadAt(p, t.pos)
	t.pos += int64(n)
	if t.onRead != nil && n > 0 {
		t.onRead(n, int(t.pos))
	}
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

func (t *trackedReader) Seek(off int64, whence int) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = off
	case io.SeekCurrent:
		abs = t.pos + off
	case io.SeekEnd:
		abs = t.size + off
	default:
		return 0, errors.New("trackedReader: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("trackedReader: negative position")
	}
	t.pos = abs
	return abs, nil
}
