package software

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/fotastack/fota/client/blockpull"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// parsePackageURI checks a Package URI (/9/x/3): coap:// or coaps://
// (result 56 otherwise, LwM2M Core E.9).
func parsePackageURI(s string) (*url.URL, Result) {
	// /9 has no "unsupported protocol" result: every refusal is 56.
	u, err := blockpull.ParseURI(s, maxURILen)
	if err != nil {
		return nil, ResultInvalidURI
	}
	return u, ResultInitial
}

// runPull starts the download goroutine of in. The caller holds mu.
func (o *Object) runPull(in *instance, u *url.URL) {
	o.stopPull(in)
	ctx, cancel := context.WithCancel(context.Background())
	in.pullCancel = cancel
	gen := in.gen
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer cancel()
		o.pull(ctx, in, gen, u)
	}()
}

// stopPull cancels in's download goroutine; it sees the new generation
// and changes nothing more. The caller holds mu.
func (o *Object) stopPull(in *instance) {
	if in.pullCancel != nil {
		in.pullCancel()
		in.pullCancel = nil
	}
	in.gen++
}

// pull is the device's Block2 loop (RFC 7959 2.4): one GET per block, each
// block appended to the package file and the record before the next is
// asked for; an ETag that changes restarts; transport failures are retried
// on a fresh connection up to Config.Retries in a row.
func (o *Object) pull(ctx context.Context, in *instance, gen uint64, u *url.URL) {
	o.mu.Lock()
	done, etag := in.rec.Done, in.rec.ETag
	bs := o.cfg.BlockSize
	if in.rec.BlockSize > 0 && done%int64(in.rec.BlockSize) == 0 {
		bs = in.rec.BlockSize
	} else if done%int64(bs) != 0 {
		done = 0
	}
	o.mu.Unlock()
	var conn *udpclient.Conn
	shared := false
	drop := func() {
		if conn != nil && !shared {
			_ = conn.Close()
		}
		conn, shared = nil, false
	}
	defer drop()
	fails := 0
	// failed ends the download unless it is superseded.
	failed := func(res Result, why string) {
		o.mu.Lock()
		defer o.unlock()
		if in.gen == gen && !o.closed {
			in.pullCancel = nil
			o.fail(in, res, why)
		}
	}
	retry := func(why error) bool {
		drop()
		fails++
		if fails > o.cfg.Retries {
			failed(ResultConnectionLost, "download failed: "+why.Error())
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
			conn, shared = o.serverSession(u)
		}
		if conn == nil {
			var err error
			if conn, err = o.dial(ctx, u); err != nil {
				if !retry(err) {
					return
				}
				continue
			}
		}
		szx, _ := blockpull.SZXOf(bs)
		b, err := o.get(ctx, conn, shared, u, szx, done/int64(bs))
		if err != nil {
			if ctx.Err() != nil || !retry(err) {
				return
			}
			continue
		}
		if b.Code != codes.Content {
			if b.Code >= codes.InternalServerError {
				if !retry(fmt.Errorf("server answered %v", b.Code)) {
					return
				}
				continue
			}
			failed(ResultInvalidURI, fmt.Sprintf("%s answered %v", u.Redacted(), b.Code))
			return
		}
		fails = 0
		if len(etag) > 0 && len(b.ETag) > 0 && !bytes.Equal(etag, b.ETag) {
			// Another package now: start again.
			done, etag = 0, b.ETag
			if b.Num != 0 {
				continue
			}
		}
		if len(etag) == 0 {
			etag = b.ETag
		}
		if off := b.Num * b.SZX.Size(); off != done {
			if b.SZX < szx && off == done/b.SZX.Size()*b.SZX.Size() {
				bs = int(b.SZX.Size())
			}
			if !retry(fmt.Errorf("server sent the block at byte %d, asked for %d", off, done)) {
				return
			}
			continue
		}
		bs = int(b.SZX.Size())
		if b.Size2 > o.cfg.MaxPackage || done+int64(len(b.Payload)) > o.cfg.MaxPackage {
			failed(ResultNoStorage, fmt.Sprintf("package larger than the %d bytes of room", o.cfg.MaxPackage))
			return
		}
		last := !b.More
		o.mu.Lock()
		if in.gen != gen || o.closed {
			o.unlock()
			return
		}
		if err := writePackageAt(in.dir, done, b.Payload); err != nil {
			o.fail(in, ResultNoStorage, err.Error())
			o.unlock()
			return
		}
		done += int64(len(b.Payload))
		in.rec.Done, in.rec.BlockSize, in.rec.ETag = done, bs, etag
		if last {
			o.finishDownload(in)
		} else {
			o.persist(in, false)
		}
		o.unlock()
		if last {
			return
		}
	}
}

type block = blockpull.Block

// get asks for block num; shared says conn is the client's own session,
// whose blockwise layer is kept out of this loop (client.RawBlock2).
func (o *Object) get(ctx context.Context, conn *udpclient.Conn, shared bool, u *url.URL, szx blockwise.SZX, num int64) (block, error) {
	return blockpull.Get(ctx, conn, u, szx, num, blockpull.Request{Shared: shared, Timeout: o.cfg.RequestTimeout})
}

// serverSession is the device's session with its LwM2M server when u
// names that server: the package comes over it, with no handshake.
func (o *Object) serverSession(u *url.URL) (*udpclient.Conn, bool) {
	o.mu.Lock()
	session := o.cfg.Session
	o.mu.Unlock()
	return blockpull.Over(session, u)
}

// dial opens a session of its own to the package server: UDP for coap://,
// DTLS-PSK with the device's credentials for coaps://.
func (o *Object) dial(ctx context.Context, u *url.URL) (*udpclient.Conn, error) {
	o.mu.Lock()
	creds := o.cfg.Credentials
	o.mu.Unlock()
	d := blockpull.Dialer{NSTART: 1, AckTimeout: 2 * time.Second, HandshakeTimeout: 10 * time.Second}
	if creds != nil {
		d.PSKIdentity, d.PSKKey = creds()
	}
	return d.Dial(ctx, u)
}
