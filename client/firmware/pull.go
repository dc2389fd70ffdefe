package firmware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/fotastack/fota/client/blockpull"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// parsePackageURI checks a Package URI (/5/0/1). LwM2M Core E.6: a URI the
// device cannot parse is result 7 (invalid URI); a scheme it does not
// speak is result 9 (unsupported protocol). This device pulls over CoAP
// and CoAPS (Protocol Support, /5/0/8).
func parsePackageURI(s string) (*url.URL, Result) {
	u, err := blockpull.ParseURI(s, maxURILen)
	switch {
	case errors.Is(err, blockpull.ErrUnsupportedProtocol):
		return nil, ResultUnsupportedProtocol
	case err != nil:
		return nil, ResultInvalidURI
	}
	return u, ResultInitial
}

// startPull begins (or resumes) the download of uri. A write of the same
// URI after a connection loss (result 4) continues from the stored block.
// The caller holds mu.
func (o *Object) startPull(uri string) error {
	u, res := parsePackageURI(uri)
	if res != ResultInitial {
		o.clearDownload()
		o.rec.URI = uri
		o.changed(ResPackageURI)
		o.enter(StateIdle, res)
		return nil
	}
	if !(o.rec.Method == methodPull && o.rec.URI == uri && o.rec.Done > 0) {
		o.clearDownload()
		o.rec.URI, o.rec.Method = uri, methodPull
	}
	o.changed(ResPackageURI)
	o.enter(StateDownloading, ResultInitial)
	o.runPull(u)
	return nil
}

// runPull starts the download goroutine. The caller holds mu.
func (o *Object) runPull(u *url.URL) {
	o.gen++
	ctx, cancel := context.WithCancel(context.Background())
	o.pullCancel = cancel
	gen := o.gen
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer cancel()
		o.pull(ctx, gen, u)
	}()
}

// stopPull cancels a download goroutine; it sees the new generation and
// changes nothing more. The caller holds mu.
func (o *Object) stopPull() {
	if o.pullCancel != nil {
		o.pullCancel()
		o.pullCancel = nil
	}
	o.gen++
}

// block is one Block2 answer.
type block = blockpull.Block

// errStale means the download was cancelled or replaced meanwhile.
var errStale = errors.New("download superseded")

// pull is the device's own Block2 loop (RFC 7959 2.4): one GET per block,
// the block size chosen by the device, each block written to staging and
// the progress record before the next is asked for. Transport failures are
// retried (a fresh connection each time) up to Config.Retries in a row.
func (o *Object) pull(ctx context.Context, gen uint64, u *url.URL) {
	o.mu.Lock()
	done, bs, etag := o.rec.Done, o.cfg.BlockSize, o.rec.ETag
	if done%int64(bs) != 0 && o.rec.BlockSize > 0 {
		bs = o.rec.BlockSize // resume in the size the stored bytes came in
	}
	o.mu.Unlock()
	var conn *udpclient.Conn
	shared := false // conn is the client's session with its server: not ours to close
	window := o.window(u)
	// ahead holds answers fetched in the same round trip as the block
	// being handled (a window of pipelined requests), in block order.
	var ahead []block
	drop := func() {
		if conn != nil && !shared {
			_ = conn.Close()
		}
		if conn != nil && shared && window > 1 {
			conn.Transmission().SetTransmissionNStart(1)
		}
		conn, shared, ahead = nil, false, nil
	}
	defer drop()
	fails, answered := 0, false
	retry := func(why error) bool {
		drop()
		fails++
		o.log.Debug("firmware pull: retry", "uri", u.Redacted(), "attempt", fails, "err", why)
		if fails > o.cfg.Retries {
			res := ResultInvalidURI // never answered: the URI leads nowhere
			if answered {
				res = ResultConnectionLost
			}
			o.pullFailed(gen, res)
			return false
		}
		t := time.NewTimer(o.cfg.RetryWait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		if conn == nil {
			if conn, shared = o.serverSession(u); conn != nil && window > 1 {
				// The granted window applies to this session while the
				// pull runs (drop sets NSTART back to 1).
				conn.Transmission().SetTransmissionNStart(uint32(window))
			}
		}
		if conn == nil {
			var err error
			if conn, err = o.dial(ctx, u, window); err != nil {
				if errors.Is(err, blockpull.ErrNoCredentials) {
					o.pullFailed(gen, ResultUnsupportedProtocol)
					return
				}
				if !retry(err) {
					return
				}
				continue
			}
		}
		szx, _ := blockpull.SZXOf(bs)
		var b block
		if len(ahead) > 0 {
			b, ahead = ahead[0], ahead[1:]
		} else {
			n := window
			o.mu.Lock()
			if total := o.rec.Total; total > 0 {
				n = min(n, int((total-done+int64(bs)-1)/int64(bs)))
			}
			o.mu.Unlock()
			bl, err := o.getWindow(ctx, conn, shared, u, szx, done/int64(bs), max(n, 1))
			if err != nil {
				if ctx.Err() != nil || !retry(err) {
					return
				}
				continue
			}
			b, ahead = bl[0], bl[1:]
		}
		if b.Code >= codes.InternalServerError {
			if !retry(fmt.Errorf("server answered %v", b.Code)) {
				return
			}
			continue
		}
		if b.Code != codes.Content {
			// 4.04 and the other client errors: the URI names nothing
			// we can get (LwM2M Core E.6, result 7).
			o.log.Info("firmware pull: refused", "uri", u.Redacted(), "code", b.Code)
			o.pullFailed(gen, ResultInvalidURI)
			return
		}
		fails, answered = 0, true
		// RFC 7252 5.10.6: a different ETag is a different package; the
		// bytes staged so far belong to the old one: start again.
		if len(etag) > 0 && len(b.ETag) > 0 && !bytes.Equal(etag, b.ETag) {
			o.log.Info("firmware pull: package changed (ETag), restarting", "uri", u.Redacted())
			done, etag, ahead = 0, b.ETag, nil
			if err := o.progress(gen, func() { o.rec.Done, o.rec.Total, o.rec.ETag = 0, 0, b.ETag }); err != nil {
				return
			}
			if b.Num != 0 {
				continue
			}
		}
		if len(etag) == 0 {
			etag = b.ETag
		}
		if off := b.Num * b.SZX.Size(); off != done {
			if b.SZX < szx && off == done/b.SZX.Size()*b.SZX.Size() {
				bs = int(b.SZX.Size()) // RFC 7959 2.4: the server chose smaller blocks
			}
			if !retry(fmt.Errorf("server sent the block at byte %d, asked for %d", off, done)) {
				return
			}
			continue
		}
		bs = int(b.SZX.Size())
		if b.Size2 > o.st.size() || done+int64(len(b.Payload)) > o.st.size() {
			o.pullFailed(gen, ResultNotEnoughFlash)
			return
		}
		if b.More && len(b.Payload) != bs {
			if !retry(fmt.Errorf("block %d has %d bytes, want %d", b.Num, len(b.Payload), bs)) {
				return
			}
			continue
		}
		o.flashMu.Lock()
		err := o.st.write(done, b.Payload)
		o.flashMu.Unlock()
		if err != nil {
			o.log.Warn("firmware pull: stage block", "err", err)
			o.pullFailed(gen, ResultNotEnoughFlash)
			return
		}
		done += int64(len(b.Payload))
		last := !b.More
		if err := o.progress(gen, func() {
			o.rec.Done, o.rec.BlockSize, o.rec.ETag = done, bs, etag
			if b.Size2 >= 0 {
				o.rec.Total = b.Size2
			}
			if last {
				o.rec.Total = done
				o.pullCancel = nil
				o.finishDownload()
			}
		}); err != nil || last {
			return
		}
	}
}

// progress applies f to the record under mu and saves it, unless the
// download was superseded.
func (o *Object) progress(gen uint64, f func()) error {
	o.mu.Lock()
	defer o.unlock()
	if o.gen != gen || o.closed {
		return errStale
	}
	f()
	o.save()
	return nil
}

// pullFailed ends the download with result res (State Idle, LwM2M Core
// E.6). After a connection loss the URI, ETag and bytes are kept: writing
// the same URI again resumes.
func (o *Object) pullFailed(gen uint64, res Result) {
	o.mu.Lock()
	defer o.unlock()
	if o.gen != gen || o.closed {
		return
	}
	o.pullCancel = nil
	if res != ResultConnectionLost {
		o.rec.Done, o.rec.Total, o.rec.ETag = 0, 0, nil
	}
	o.enter(StateIdle, res)
}

// window is the number of Block2 requests the pull keeps in flight: the
// server's grant in the Package URI (nstart=N), capped by MaxWindow; 1
// without a grant.
func (o *Object) window(u *url.URL) int {
	n, err := strconv.Atoi(u.Query().Get("nstart"))
	if err != nil || n <= 1 {
		return 1
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return min(n, o.cfg.MaxWindow)
}

// getWindow asks for blocks first, first+1, ... first+n-1 at once
// (pipelined Block2: RFC 7959 blocks are random access, and the server
// granted NSTART n) and returns the answers in block order, cut after the
// last block of the resource: when the size is not known yet, requests
// past the end are answered 4.02 and dropped.
//
// The requests of a window are non-confirmable, as RFC 9177 (Q-Block2)
// does for bursts: on a slow link the answers queue behind each other,
// and a confirmable request's ACK timeout, sized for one exchange, would
// fire for the last ones and have the server send their blocks again.
// Block i is given the ACK timeout stretched by a quarter per block queued
// before it; a block that does not come in that time (lost either way) is
// asked again, confirmable, before the window is handed on. Only a failure
// of the first block is an error; past a later failure the rest is asked
// in the next round.
func (o *Object) getWindow(ctx context.Context, conn *udpclient.Conn, shared bool, u *url.URL, szx blockwise.SZX, first int64, n int) ([]block, error) {
	if n == 1 {
		b, err := o.get(ctx, conn, shared, u, szx, first, 0)
		if err != nil {
			return nil, err
		}
		return []block{b}, nil
	}
	o.mu.Lock()
	ack := o.cfg.AckTimeout
	o.mu.Unlock()
	bs := make([]block, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bs[i], errs[i] = o.get(ctx, conn, shared, u, szx, first+int64(i), ack*time.Duration(4+i)/4)
		}()
	}
	wg.Wait()
	var out []block
	for i := range n {
		if len(out) > 0 {
			if prev := out[len(out)-1]; prev.Code != codes.Content || !prev.More {
				break
			}
		}
		if errs[i] != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			b, err := o.get(ctx, conn, shared, u, szx, first+int64(i), 0)
			if err != nil {
				if len(out) == 0 {
					return nil, err
				}
				break
			}
			bs[i] = b
		}
		if len(out) > 0 && bs[i].Code != codes.Content {
			break
		}
		out = append(out, bs[i])
	}
	return out, nil
}

// get asks for block num of u's resource: confirmable, bounded by
// RequestTimeout, or, with wait > 0, non-confirmable (no retransmission)
// waiting that long for the answer.
// shared says conn is the client's session with its server, whose
// blockwise layer must be kept out of this loop (client.RawBlock2).
func (o *Object) get(ctx context.Context, conn *udpclient.Conn, shared bool, u *url.URL, szx blockwise.SZX, num int64, wait time.Duration) (block, error) {
	r := blockpull.Request{Shared: shared, Timeout: o.cfg.RequestTimeout}
	if wait > 0 {
		r.Timeout, r.NonConfirmable = wait, true
	}
	return blockpull.Get(ctx, conn, u, szx, num, r)
}

// serverSession returns the device's own session with its LwM2M server
// when u names that server (same scheme and host:port): the package is
// then pulled over it, without a handshake of its own (LwM2M Core E.6
// leaves the pull's transport to the device). nil otherwise.
func (o *Object) serverSession(u *url.URL) (*udpclient.Conn, bool) {
	o.mu.Lock()
	session := o.cfg.Session
	o.mu.Unlock()
	conn, ok := blockpull.Over(session, u)
	if ok {
		o.log.Debug("firmware pull: over the server session", "uri", u.Redacted())
	}
	return conn, ok
}

// dial opens a CoAP session to the package server: plain UDP for coap://,
// DTLS-PSK with the device's own credentials for coaps://.
func (o *Object) dial(ctx context.Context, u *url.URL, nstart int) (*udpclient.Conn, error) {
	if o.cfg.Via != nil {
		v := *u
		v.Host = o.cfg.Via(u.Host)
		u = &v
	}
	o.mu.Lock()
	id, key, creds := o.cfg.PSKIdentity, append([]byte(nil), o.cfg.PSKKey...), o.cfg.Credentials
	d := blockpull.Dialer{NSTART: nstart, AckTimeout: o.cfg.AckTimeout, HandshakeTimeout: o.cfg.HandshakeTimeout,
		FlightInterval: o.cfg.FlightInterval, Errors: func(err error) { o.log.Debug("firmware pull: coap", "err", err) }}
	o.mu.Unlock()
	if creds != nil {
		id, key = creds()
	}
	d.PSKIdentity, d.PSKKey = id, key
	return d.Dial(ctx, u)
}
