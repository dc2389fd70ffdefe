package software

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/fotastack/fota/client"
	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// parsePackageURI checks a Package URI (/9/x/3): coap:// or coaps://
// (result 56 otherwise, LwM2M Core E.9).
func parsePackageURI(s string) (*url.URL, Result) {
	if s == "" || len(s) > maxURILen {
		return nil, ResultInvalidURI
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "coap" && u.Scheme != "coaps") || u.Hostname() == "" || u.Opaque != "" || u.User != nil || u.Fragment != "" {
		return nil, ResultInvalidURI
	}
	if u.Port() == "" {
		port := "5683"
		if u.Scheme == "coaps" {
			port = "5684"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
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
		szx, _ := szxOf(bs)
		b, err := o.get(ctx, conn, shared, u, szx, done/int64(bs))
		if err != nil {
			if ctx.Err() != nil || !retry(err) {
				return
			}
			continue
		}
		if b.code != codes.Content {
			if b.code >= codes.InternalServerError {
				if !retry(fmt.Errorf("server answered %v", b.code)) {
					return
				}
				continue
			}
			failed(ResultInvalidURI, fmt.Sprintf("%s answered %v", u.Redacted(), b.code))
			return
		}
		fails = 0
		if len(etag) > 0 && len(b.etag) > 0 && !bytes.Equal(etag, b.etag) {
			// Another package now: start again.
			done, etag = 0, b.etag
			if b.num != 0 {
				continue
			}
		}
		if len(etag) == 0 {
			etag = b.etag
		}
		if off := b.num * b.szx.Size(); off != done {
			if b.szx < szx && off == done/b.szx.Size()*b.szx.Size() {
				bs = int(b.szx.Size())
			}
			if !retry(fmt.Errorf("server sent the block at byte %d, asked for %d", off, done)) {
				return
			}
			continue
		}
		bs = int(b.szx.Size())
		if b.size2 > o.cfg.MaxPackage || done+int64(len(b.payload)) > o.cfg.MaxPackage {
			failed(ResultNoStorage, fmt.Sprintf("package larger than the %d bytes of room", o.cfg.MaxPackage))
			return
		}
		last := !b.more
		o.mu.Lock()
		if in.gen != gen || o.closed {
			o.unlock()
			return
		}
		if err := writePackageAt(in.dir, done, b.payload); err != nil {
			o.fail(in, ResultNoStorage, err.Error())
			o.unlock()
			return
		}
		done += int64(len(b.payload))
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

type block struct {
	code    codes.Code
	payload []byte
	szx     blockwise.SZX
	num     int64
	more    bool
	etag    []byte
	size2   int64
}

func szxOf(size int) (blockwise.SZX, error) {
	for szx := blockwise.SZX16; szx <= blockwise.SZX1024; szx++ {
		if int(szx.Size()) == size {
			return szx, nil
		}
	}
	return 0, fmt.Errorf("block size %d is not a power of two from 16 to 1024", size)
}

// get asks for block num; shared says conn is the client's own session,
// whose blockwise layer is kept out of this loop (client.RawBlock2).
func (o *Object) get(ctx context.Context, conn *udpclient.Conn, shared bool, u *url.URL, szx blockwise.SZX, num int64) (block, error) {
	rctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
	defer cancel()
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	req, err := conn.NewGetRequest(rctx, path)
	if err != nil {
		return block{}, fmt.Errorf("build GET %s: %w", u.Redacted(), err)
	}
	defer conn.ReleaseMessage(req)
	if u.RawQuery != "" {
		for _, q := range bytes.Split([]byte(u.RawQuery), []byte("&")) {
			if qs, err := url.QueryUnescape(string(q)); err == nil {
				req.AddOptionString(message.URIQuery, qs)
			}
		}
	}
	v, err := blockwise.EncodeBlockOption(szx, num, false)
	if err != nil {
		return block{}, err
	}
	req.SetOptionUint32(message.Block2, v)
	if shared {
		client.RawBlock2(req)
	}
	resp, err := conn.Do(req)
	var b2 uint32
	var hasB2 bool
	if shared {
		b2, hasB2 = client.TakeBlock2(req)
	}
	if err != nil {
		return block{}, fmt.Errorf("GET %s block %d: %w", u.Redacted(), num, err)
	}
	defer conn.ReleaseMessage(resp)
	if hasB2 {
		resp.SetOptionUint32(message.Block2, b2)
	}
	b := block{code: resp.Code(), szx: szx, num: num, size2: -1}
	if b.code != codes.Content {
		return b, nil
	}
	if bv, err := resp.GetOptionUint32(message.Block2); err == nil {
		if b.szx, b.num, b.more, err = blockwise.DecodeBlockOption(bv); err != nil || b.szx > blockwise.SZX1024 {
			return block{}, fmt.Errorf("GET %s: bad Block2 option in the answer", u.Redacted())
		}
	} else if num != 0 {
		return block{}, fmt.Errorf("GET %s block %d: answer without Block2", u.Redacted(), num)
	}
	if e, err := resp.ETag(); err == nil {
		b.etag = append([]byte(nil), e...)
	}
	if s, err := resp.Options().GetUint32(message.Size2); err == nil {
		b.size2 = int64(s)
	}
	if body := resp.Body(); body != nil {
		w := bytes.NewBuffer(make([]byte, 0, int(b.szx.Size())))
		if _, err := w.ReadFrom(body); err != nil {
			return block{}, fmt.Errorf("GET %s block %d: read: %w", u.Redacted(), num, err)
		}
		b.payload = w.Bytes()
	}
	return b, nil
}

// serverSession is the device's session with its LwM2M server when u
// names that server: the package comes over it, with no handshake.
func (o *Object) serverSession(u *url.URL) (*udpclient.Conn, bool) {
	o.mu.Lock()
	session := o.cfg.Session
	o.mu.Unlock()
	if session == nil {
		return nil, false
	}
	conn, scheme, hostport := session()
	if conn == nil || scheme != u.Scheme || hostport != u.Host {
		return nil, false
	}
	return conn, true
}

var errNoCredentials = errors.New("coaps Package URI but the device has no PSK")

// dial opens a session of its own to the package server: UDP for coap://,
// DTLS-PSK with the device's credentials for coaps://.
func (o *Object) dial(ctx context.Context, u *url.URL) (*udpclient.Conn, error) {
	opts := []udp.Option{
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
		options.WithTransmission(1, 2*time.Second, 4),
		options.WithMTU(8192),
	}
	if u.Scheme == "coap" {
		return udp.Dial(u.Host, opts...)
	}
	o.mu.Lock()
	creds := o.cfg.Credentials
	o.mu.Unlock()
	if creds == nil {
		return nil, errNoCredentials
	}
	id, key := creds()
	if id == "" || len(key) == 0 {
		return nil, errNoCredentials
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "udp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.Host, err)
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(raw), raw.RemoteAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(id)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CCM),
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
		piondtls.WithMTU(1400))
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("dtls client %s: %w", u.Host, err)
	}
	// pion's handshake is lazy (../shared/notes trap 1): do it now, bounded.
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = dc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("dtls handshake with %s: %w", u.Host, err)
	}
	return coapdtls.Client(dc, append(opts, options.WithCloseSocket())...), nil
}
