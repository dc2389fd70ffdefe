package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// maxBody bounds a request payload we read into memory. go-coap has
// already reassembled a blockwise body up to its own MaxMessageSize; this
// is a second fence for whatever reaches the object model.
const maxBody = 1 << 20

// handler is the device-management side of the client: the server's
// requests on the device's own session (LwM2M Core 6.3 and 6.4).
func (c *Client) handler() mux.Handler { return mux.HandlerFunc(c.serve) }

// request is one decoded server request.
type request struct {
	w    mux.ResponseWriter
	r    *mux.Message
	path lwm2m.Path
	body []byte
}

// serve routes a request by method and path level (LwM2M Core 8.3.1,
// Table: "Operation to CoAP method mapping").
func (c *Client) serve(w mux.ResponseWriter, r *mux.Message) {
	switch r.Code() {
	case codes.GET, codes.PUT, codes.POST, codes.DELETE, codes.FETCH, codes.IPATCH:
	default:
		return // responses and empty messages are go-coap's business
	}
	c.touch()
	req := &request{w: w, r: r}
	ps, err := r.Options().Path()
	if err != nil && !errors.Is(err, message.ErrOptionNotFound) {
		c.fail(req, fmt.Errorf("request path: %w", ErrBadRequest))
		return
	}
	req.path, err = lwm2m.ParsePath(ps)
	if err != nil {
		// A path that is no LwM2M path names nothing we have.
		c.fail(req, fmt.Errorf("%v: %w", err, ErrNotFound))
		return
	}
	if b := r.Body(); b != nil {
		req.body, err = io.ReadAll(io.LimitReader(b, maxBody+1))
		if err != nil {
			c.fail(req, fmt.Errorf("read payload: %w", ErrBadRequest))
			return
		}
		if len(req.body) > maxBody {
			c.fail(req, lwm2m.NewError(codes.RequestEntityTooLarge, "payload above %d bytes", maxBody))
			return
		}
	}
	// LwM2M Core E.1: the Security object is only for the bootstrap server.
	if req.path.Len() > 0 && req.path.Object() == 0 {
		c.fail(req, fmt.Errorf("%v: the Security object is not accessible: %w", req.path, ErrUnauthorized))
		return
	}
	if h := c.rawHandler(req.path, r.Code()); h != nil {
		h.ServeLwM2M(w, r, req.path)
		return
	}
	switch r.Code() {
	case codes.GET:
		c.serveGet(req)
	case codes.FETCH:
		c.serveFetch(req)
	case codes.PUT:
		c.servePut(req)
	case codes.POST:
		c.servePost(req)
	case codes.DELETE:
		c.serveDelete(req)
	case codes.IPATCH:
		c.serveWriteComposite(req)
	}
}

// RawHandler is implemented by objects that want the CoAP request itself
// for paths below them, the Firmware Update object streaming a Block1
// package write to flash (issue 7), for example. When Handles says yes,
// the client hands the request over untouched.
type RawHandler interface {
	Handles(p lwm2m.Path, code codes.Code) bool
	ServeLwM2M(w mux.ResponseWriter, r *mux.Message, p lwm2m.Path)
}

func (c *Client) rawHandler(p lwm2m.Path, code codes.Code) RawHandler {
	if p.Len() == 0 {
		return nil
	}
	h, ok := c.Object(p.Object()).(RawHandler)
	if !ok || !h.Handles(p, code) {
		return nil
	}
	return h
}

// fail answers err with its CoAP code and the message as diagnostic
// payload (RFC 7252 5.5.2).
func (c *Client) fail(req *request, err error) {
	code := lwm2m.CodeOf(err)
	c.log.Debug("lwm2m request failed", "method", req.r.Code(), "path", req.path, "code", code, "err", err)
	c.respond(req, code, message.TextPlain, []byte(err.Error()))
}

func (c *Client) respond(req *request, code codes.Code, cf message.MediaType, body []byte, opts ...message.Option) {
	var rd io.ReadSeeker
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if err := req.w.SetResponse(code, cf, rd, opts...); err != nil {
		c.log.Warn("lwm2m respond", "err", err)
	}
}

// accept returns the Accept option, ok false when absent.
func accept(r *mux.Message) (lwm2m.ContentFormat, bool) {
	a, err := r.Options().Accept()
	if err != nil {
		return 0, false
	}
	return lwm2m.ContentFormat(a), true
}

// contentFormat returns the Content-Format of the payload; a payload
// without one is refused with 4.15 (LwM2M Core 7: the format is never
// guessed).
func contentFormat(r *mux.Message) (lwm2m.ContentFormat, error) {
	cf, err := r.Options().ContentFormat()
	if err != nil {
		return 0, fmt.Errorf("payload has no Content-Format: %w", ErrUnsupportedFormat)
	}
	return lwm2m.ContentFormat(cf), nil
}

// observeOption returns the Observe option: 0 register, 1 cancel, -1 none.
func observeOption(r *mux.Message) int {
	v, err := r.Options().Observe()
	if err != nil {
		return -1
	}
	return int(v)
}

func (c *Client) serveGet(req *request) {
	if a, ok := accept(req.r); ok && a == lwm2m.FormatLinkFormat {
		c.serveDiscover(req)
		return
	}
	switch observeOption(req.r) {
	case 0:
		c.serveObserve(req, []lwm2m.Path{req.path}, false)
		return
	case 1:
		c.cancelObservation(req.r.Token())
	}
	entries, err := c.read(req.path)
	if err != nil {
		c.fail(req, err)
		return
	}
	cf, body, err := c.encode(req.r, req.path, entries, true)
	if err != nil {
		c.fail(req, err)
		return
	}
	c.respond(req, codes.Content, message.MediaType(cf), body)
}

// read collects the entries at p (/o, /o/i, /o/i/r or /o/i/r/ri).
func (c *Client) read(p lwm2m.Path) ([]lwm2m.Entry, error) {
	if p.IsRoot() {
		return nil, fmt.Errorf("read /: %w", ErrNotAllowed)
	}
	o := c.Object(p.Object())
	if o == nil {
		return nil, notFound(p)
	}
	if !p.IsObject() {
		return o.Read(p)
	}
	var out []lwm2m.Entry
	for _, i := range o.Instances() {
		e, err := o.Read(lwm2m.InstancePath(p.Object(), i))
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

// encode picks the response format: the Accept option when present
// (4.06 when we cannot produce it), else text/plain or opaque for a single
// value (LwM2M Core 7.4: plain text for a single resource) and SenML CBOR
// for anything bigger, the format announced at registration.
func (c *Client) encode(r *mux.Message, base lwm2m.Path, entries []lwm2m.Entry, singleOK bool) (lwm2m.ContentFormat, []byte, error) {
	cf, asked := accept(r)
	if !asked {
		cf = lwm2m.FormatSenMLCBOR
		if singleOK && base.Len() >= 3 && len(entries) == 1 && entries[0].Path == base {
			cf = lwm2m.FormatText
			if entries[0].Value.Type() == lwm2m.TypeOpaque {
				cf = lwm2m.FormatOpaque
			}
		}
	}
	body, err := lwm2m.Encode(cf, base, entries)
	if err != nil {
		if asked && errors.Is(err, lwm2m.ErrUnsupportedFormat) {
			return 0, nil, fmt.Errorf("cannot answer %v in %v: %w", base, cf, ErrNotAcceptable)
		}
		return 0, nil, fmt.Errorf("encode %v as %v: %w", base, cf, err)
	}
	return cf, body, nil
}

// decode reads a write payload for base, typed by the objects' models.
func (c *Client) decode(req *request, base lwm2m.Path) ([]lwm2m.Entry, error) {
	cf, err := contentFormat(req.r)
	if err != nil {
		return nil, err
	}
	entries, err := lwm2m.Decode(cf, base, req.body, c)
	if err != nil {
		if errors.Is(err, lwm2m.ErrUnsupportedFormat) {
			return nil, fmt.Errorf("%v: %w", err, ErrUnsupportedFormat)
		}
		return nil, fmt.Errorf("%v: %w", err, ErrBadRequest)
	}
	return entries, nil
}

// servePut is Write (Replace) or, with a query and no payload,
// Write-Attributes (LwM2M Core 5.4.3, 5.4.4).
func (c *Client) servePut(req *request) {
	qs, _ := req.r.Options().Queries()
	if len(req.body) == 0 && len(qs) > 0 {
		c.serveWriteAttributes(req, qs)
		return
	}
	c.serveWrite(req, true)
}

func (c *Client) serveWrite(req *request, replace bool) {
	p := req.path
	if p.Len() < 2 {
		c.fail(req, fmt.Errorf("write %v: %w", p, ErrNotAllowed))
		return
	}
	o := c.Object(p.Object())
	if o == nil {
		c.fail(req, notFound(p))
		return
	}
	entries, err := c.decode(req, p)
	if err != nil {
		c.fail(req, err)
		return
	}
	if err := o.Write(p, entries, replace); err != nil {
		c.fail(req, err)
		return
	}
	c.respond(req, codes.Changed, message.TextPlain, nil)
}

// servePost is Execute on a resource, Create on an object and Write
// (Partial Update) on an instance.
func (c *Client) servePost(req *request) {
	p := req.path
	switch {
	case p.IsResource():
		o := c.Object(p.Object())
		if o == nil {
			c.fail(req, notFound(p))
			return
		}
		// LwM2M Core 5.4.5: the arguments are a text list such as 0='a',1.
		if err := checkExecuteArgs(req.body); err != nil {
			c.fail(req, err)
			return
		}
		if err := o.Execute(p, string(req.body)); err != nil {
			c.fail(req, err)
			return
		}
		c.respond(req, codes.Changed, message.TextPlain, nil)
	case p.IsObject():
		c.serveCreate(req)
	case p.IsInstance():
		c.serveWrite(req, false)
	default:
		c.fail(req, fmt.Errorf("POST %v: %w", p, ErrNotAllowed))
	}
}

// serveCreate creates one instance (LwM2M Core 5.4.6). The instance ID
// comes from the payload or is the lowest free one; the answer's
// Location-Path names it.
func (c *Client) serveCreate(req *request) {
	p := req.path
	o := c.Object(p.Object())
	if o == nil {
		c.fail(req, notFound(p))
		return
	}
	var entries []lwm2m.Entry
	if len(req.body) > 0 {
		var err error
		if entries, err = c.decode(req, p); err != nil {
			c.fail(req, err)
			return
		}
	}
	inst := -1
	for _, e := range entries {
		if e.Path.Len() < 3 {
			c.fail(req, fmt.Errorf("create %v: entry %v is not a resource: %w", p, e.Path, ErrBadRequest))
			return
		}
		switch {
		case inst < 0:
			inst = int(e.Path.Instance())
		case inst != int(e.Path.Instance()):
			c.fail(req, fmt.Errorf("create %v: payload names several instances: %w", p, ErrBadRequest))
			return
		}
	}
	if inst < 0 {
		used := map[uint16]bool{}
		for _, i := range o.Instances() {
			used[i] = true
		}
		for inst = 0; used[uint16(inst)]; inst++ {
		}
	}
	if inst > lwm2m.MaxID {
		c.fail(req, fmt.Errorf("create %v: no free instance ID: %w", p, ErrBadRequest))
		return
	}
	if err := o.Create(uint16(inst), entries); err != nil {
		c.fail(req, err)
		return
	}
	c.respond(req, codes.Created, message.TextPlain, nil,
		message.Option{ID: message.LocationPath, Value: []byte(strconv.Itoa(int(p.Object())))},
		message.Option{ID: message.LocationPath, Value: []byte(strconv.Itoa(inst))})
	c.TriggerUpdate() // the object list changed (LwM2M Core 6.2.2)
}

// serveDelete deletes an instance (LwM2M Core 5.4.7).
func (c *Client) serveDelete(req *request) {
	p := req.path
	if !p.IsInstance() {
		c.fail(req, fmt.Errorf("delete %v: only instances can be deleted: %w", p, ErrNotAllowed))
		return
	}
	o := c.Object(p.Object())
	if o == nil {
		c.fail(req, notFound(p))
		return
	}
	if err := o.Delete(p.Instance()); err != nil {
		c.fail(req, err)
		return
	}
	c.respond(req, codes.Deleted, message.TextPlain, nil)
	c.TriggerUpdate()
}

// checkExecuteArgs validates Execute arguments (LwM2M Core 5.4.5):
// a comma-separated list of digit or digit='text' items.
func checkExecuteArgs(b []byte) error {
	i := 0
	for i < len(b) {
		if b[i] < '0' || b[i] > '9' {
			return fmt.Errorf("execute arguments: byte %d: want a digit: %w", i, ErrBadRequest)
		}
		i++
		if i < len(b) && b[i] == '=' {
			if i+1 >= len(b) || b[i+1] != '\'' {
				return fmt.Errorf("execute arguments: byte %d: want a quoted value: %w", i+1, ErrBadRequest)
			}
			end := bytes.IndexByte(b[i+2:], '\'')
			if end < 0 {
				return fmt.Errorf("execute arguments: byte %d: unterminated value: %w", i+1, ErrBadRequest)
			}
			i += 2 + end + 1
		}
		if i < len(b) {
			if b[i] != ',' || i+1 == len(b) {
				return fmt.Errorf("execute arguments: byte %d: want a comma: %w", i, ErrBadRequest)
			}
			i++
		}
	}
	return nil
}
