package dm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/transport"
)

// Errors of device management requests; the HTTP API maps them to 404,
// 503 and 504.
var (
	ErrUnknownDevice = errors.New("no such registered device")
	ErrQueueFull     = errors.New("request queue of the sleeping device is full")
	ErrNoSession     = errors.New("device has no open session; it must reconnect")
	ErrTimeout       = errors.New("device did not answer in time")
)

// maxResponse bounds a response body read from a device.
const maxResponse = 1 << 20

// Request is one server-to-device request (LwM2M Core 6.3, 6.4).
type Request struct {
	Method  codes.Code
	Path    string   // "/3/0/1", "/" for composite operations
	Query   []string // Uri-Query options ("pmin=10", args...)
	Format  *lwm2m.ContentFormat
	Accept  *lwm2m.ContentFormat
	Payload []byte
	Observe *uint32
	Token   []byte // nil: a random one
	// Progress, when set, is told the bytes of Payload the device has
	// taken, after each block of a payload sent in blocks (block1.go).
	Progress func(sent, total int)

	block1, size1 *uint32 // set by sendBlock1 on each block
}

// Response is a device's answer.
type Response struct {
	Code    codes.Code
	Format  lwm2m.ContentFormat
	HasFmt  bool
	Payload []byte
	Observe bool // the response carries an Observe option: the observation is established

	block1 *uint32 // the Block1 option of a 2.31 Continue
}

// Success reports a 2.xx code.
func (r *Response) Success() bool { return r.Code>>5 == 2 }

// Do sends req to the device registered as endpoint, over its own session,
// and waits for the answer. A sleeping queue-mode device gets the request
// when it next sends an Update. ctx bounds the wait; without a deadline
// the server's RequestTimeout applies.
func (s *Server) Do(ctx context.Context, endpoint string, req Request) (*Response, error) {
	s.mu.Lock()
	d := s.byEP[endpoint]
	s.mu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, endpoint)
	}
	// LwM2M Core 6.2.1: a client announcing an alternate path (</lwm2m>;
	// rt="oma.lwm2m") serves its objects below it.
	if root := d.rootPath(); root != "" {
		req.Path = root + "/" + strings.TrimPrefix(req.Path, "/")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
	}
	if !d.awake(time.Now(), s.cfg.QueueAwake) {
		return s.enqueue(ctx, d, req)
	}
	sess, err := s.sessionOf(d)
	if err != nil {
		if d.Registration().Queue {
			return s.enqueue(ctx, d, req)
		}
		return nil, err
	}
	return s.send(ctx, sess, req)
}

// sessionOf returns a live session to d: its own, or for a plain CoAP
// device (after a restart) a new connection to its registered address.
func (s *Server) sessionOf(d *Device) (*transport.Session, error) {
	if sess := d.Session(); sess != nil && sess.Alive() {
		return sess, nil
	}
	reg := d.Registration()
	if reg.Transport == "coap" && s.udp != nil {
		sess, err := s.udp.Session(reg.Address)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.sess = sess
		d.mu.Unlock()
		return sess, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoSession, reg.Endpoint)
}

func newToken() []byte {
	t := make([]byte, 8)
	_, _ = rand.Read(t)
	return t
}

// send performs one exchange on sess.
func (s *Server) send(ctx context.Context, sess *transport.Session, req Request) (*Response, error) {
	if req.block1 == nil {
		if size := s.blockBytes(sess); len(req.Payload) > size {
			return s.sendBlock1(ctx, sess, req, size)
		}
	}
	// Use resumes a hibernated session and keeps it awake for the exchange.
	cc, done, err := sess.Use(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
	}
	defer done()
	m := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(m)
	tok := req.Token
	if tok == nil {
		tok = newToken()
	}
	m.SetToken(tok)
	m.SetCode(req.Method)
	path := req.Path
	if path == "" {
		path = "/"
	}
	if err := m.SetPath(path); err != nil {
		return nil, fmt.Errorf("path %q: %w", req.Path, err)
	}
	for _, q := range req.Query {
		m.AddQuery(q)
	}
	if req.Observe != nil {
		m.SetObserve(*req.Observe)
	}
	if req.Accept != nil {
		m.SetAccept(message.MediaType(*req.Accept))
	}
	if req.Format != nil {
		m.SetContentFormat(message.MediaType(*req.Format))
	}
	if req.Payload != nil {
		m.SetBody(bytes.NewReader(req.Payload))
	}
	if req.block1 != nil {
		m.SetOptionUint32(message.Block1, *req.block1)
		defer transport.ExpectContinue(tok)()
	}
	if req.size1 != nil {
		m.SetOptionUint32(message.Size1, *req.size1)
	}
	resp, err := cc.Do(m)
	s.reqs.count(ctx, resp, err)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, ErrTimeout)
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
	}
	defer cc.ReleaseMessage(resp)
	out := &Response{Code: resp.Code()}
	if cf, err := resp.ContentFormat(); err == nil {
		out.Format, out.HasFmt = lwm2m.ContentFormat(cf), true
	}
	if _, err := resp.Observe(); err == nil {
		out.Observe = true
	}
	if req.block1 != nil {
		if b, ok := transport.TakeContinue(tok); ok {
			out.Code, out.block1 = codes.Continue, b
		}
	}
	if body := resp.Body(); body != nil {
		b, err := io.ReadAll(io.LimitReader(body, maxResponse+1))
		if err != nil {
			return nil, fmt.Errorf("read response body: %w", err)
		}
		if len(b) > maxResponse {
			return nil, fmt.Errorf("response body over %d bytes", maxResponse)
		}
		out.Payload = b
	}
	return out, nil
}

// queued is a request waiting for a sleeping device.
type queued struct {
	ctx  context.Context
	req  Request
	done chan queuedResult
}

type queuedResult struct {
	resp *Response
	err  error
}

func (q *queued) finish(r *Response, err error) {
	select {
	case q.done <- queuedResult{r, err}:
	default:
	}
}

func (s *Server) enqueue(ctx context.Context, d *Device, req Request) (*Response, error) {
	q := &queued{ctx: ctx, req: req, done: make(chan queuedResult, 1)}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrUnknownDevice
	}
	if len(d.queue) >= s.cfg.QueueSize {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w (%d waiting)", ErrQueueFull, s.cfg.QueueSize)
	}
	d.queue = append(d.queue, q)
	d.mu.Unlock()
	s.log.Debug("request queued for sleeping device", "endpoint", d.Endpoint(), "method", req.Method, "path", req.Path)
	select {
	case r := <-q.done:
		return r.resp, r.err
	case <-ctx.Done():
		d.mu.Lock()
		for i, x := range d.queue {
			if x == q {
				d.queue = append(d.queue[:i], d.queue[i+1:]...)
				break
			}
		}
		d.mu.Unlock()
		return nil, fmt.Errorf("%s %s queued for sleeping device: %w", req.Method, req.Path, ErrTimeout)
	}
}

// flushQueue sends the requests that waited for d, in order, now that it is
// awake.
func (s *Server) flushQueue(d *Device) {
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			d.mu.Unlock()
			return
		}
		q := d.queue[0]
		d.queue = d.queue[1:]
		d.mu.Unlock()
		if q.ctx.Err() != nil {
			continue
		}
		sess, err := s.sessionOf(d)
		if err != nil {
			q.finish(nil, err)
			continue
		}
		r, err := s.send(q.ctx, sess, q.req)
		q.finish(r, err)
	}
}

func fmtPtr(f lwm2m.ContentFormat) *lwm2m.ContentFormat { return &f }

// rootPath is the alternate path the client announced without its trailing
// slash, or "" for the default root.
func (d *Device) rootPath() string {
	p, err := lwm2m.ParseRegistrationPayload([]byte(d.Registration().Links))
	if err != nil || p.RootPath == "" || p.RootPath == "/" {
		return ""
	}
	return "/" + strings.Trim(p.RootPath, "/")
}

// BestFormat is the best multi-value content format the device can handle:
// of those it announced (ct attribute of its root link, LwM2M Core 6.2.1),
// the most compact its version defines; else what its version mandates
// (lwm2m.BestFormat).
func (d *Device) BestFormat() lwm2m.ContentFormat {
	return d.formats().f
}

// Formats are the content formats the device announced with the ct
// attribute of its root link (LwM2M Core 6.2.1), in its order; nil if it
// announced none.
func (d *Device) Formats() []lwm2m.ContentFormat {
	return slices.Clone(d.formats().announced)
}

// Accepts reports whether the device takes a request body in format f for
// path: a format it announced, the multi-value format BestFormat assumes
// for it, and for a single resource (or resource instance) plain text and
// opaque, which every LwM2M client supports (Core 7.3: "The LwM2M Client
// MUST support Plain Text ... and Opaque").
func (d *Device) Accepts(f lwm2m.ContentFormat, path lwm2m.Path) bool {
	c := d.formats()
	if f == c.f || slices.Contains(c.announced, f) {
		return true
	}
	single := path.IsResource() || path.IsResourceInstance()
	return single && (f == lwm2m.FormatText || f == lwm2m.FormatOpaque)
}

// formats returns BestFormat's cache, filled for the current links and
// version.
func (d *Device) formats() formatCache {
	d.mu.Lock()
	links, version := d.reg.Links, d.reg.Version
	if c := d.format; c.ok && c.links == links && c.version == version {
		d.mu.Unlock()
		return c
	}
	d.mu.Unlock()
	var announced []lwm2m.ContentFormat
	if p, err := lwm2m.ParseRegistrationPayload([]byte(links)); err == nil {
		announced = p.Formats
	}
	c := formatCache{links: links, version: version, f: lwm2m.BestFormat(announced, version), announced: announced, ok: true}
	d.mu.Lock()
	d.format = c
	d.mu.Unlock()
	return c
}

// knowFormats fills BestFormat's cache from the formats the current links
// announce, as read when the registration was checked.
func (d *Device) knowFormats(announced []lwm2m.ContentFormat) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.format = formatCache{links: d.reg.Links, version: d.reg.Version, f: lwm2m.BestFormat(announced, d.reg.Version), announced: announced, ok: true}
}
