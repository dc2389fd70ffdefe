package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// maxCompositePaths bounds the paths of one Read-Composite or
// Observe-Composite request.
const maxCompositePaths = 256

// DecodePathList reads the payload of a Read-Composite or
// Observe-Composite request: a SenML pack whose records carry only names
// (LwM2M Core 5.4.2.2 and 7.4.4: base name "bn" plus name "n", each record
// one path). Values in the records are ignored.
func DecodePathList(cf lwm2m.ContentFormat, data []byte) ([]lwm2m.Path, error) {
	paths, err := lwm2m.DecodePaths(cf, data)
	if err != nil {
		if errors.Is(err, lwm2m.ErrUnsupportedFormat) {
			return nil, fmt.Errorf("path list: %v: %w", err, ErrUnsupportedFormat)
		}
		return nil, fmt.Errorf("path list: %v: %w", err, ErrBadRequest)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("path list: no paths: %w", ErrBadRequest)
	}
	if len(paths) > maxCompositePaths {
		return nil, fmt.Errorf("path list: %d paths, at most %d: %w", len(paths), maxCompositePaths, ErrBadRequest)
	}
	return paths, nil
}

// readComposite reads several paths (LwM2M Core 5.4.2.2). Paths the
// device does not have are left out of the answer; another failure fails
// the whole read.
func (c *Client) readComposite(paths []lwm2m.Path) ([]lwm2m.Entry, error) {
	var out []lwm2m.Entry
	seen := map[lwm2m.Path]bool{}
	for _, p := range paths {
		if p.IsRoot() {
			return nil, fmt.Errorf("read-composite /: %w", ErrNotAllowed)
		}
		if p.Object() == 0 {
			return nil, fmt.Errorf("%v: the Security object is not accessible: %w", p, ErrUnauthorized)
		}
		es, err := c.read(p)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if !seen[e.Path] {
				seen[e.Path] = true
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// serveFetch is Read-Composite, or Observe-Composite with Observe=0
// (LwM2M Core 5.4.2.2, 5.5.1). The answer is in the Accept format, else in
// the request's own format.
func (c *Client) serveFetch(req *request) {
	if !req.path.IsRoot() {
		c.fail(req, fmt.Errorf("FETCH %v: composite operations address /: %w", req.path, ErrNotAllowed))
		return
	}
	cf, err := contentFormat(req.r)
	if err != nil {
		c.fail(req, err)
		return
	}
	paths, err := DecodePathList(cf, req.body)
	if err != nil {
		c.fail(req, err)
		return
	}
	if _, ok := accept(req.r); !ok {
		req.r.SetAccept(message.MediaType(cf))
	}
	switch observeOption(req.r) {
	case 0:
		c.serveObserve(req, paths, true)
		return
	case 1:
		c.cancelObservation(req.r.Token())
	}
	entries, err := c.readComposite(paths)
	if err != nil {
		c.fail(req, err)
		return
	}
	out, body, err := c.encode(req.r, lwm2m.Root, entries, false)
	if err != nil {
		c.fail(req, err)
		return
	}
	c.respond(req, codes.Content, message.MediaType(out), body)
}

// serveWriteComposite is Write-Composite (iPATCH /, LwM2M Core 5.4.3.2):
// values for resources of several instances, checked first and then
// written as partial updates, instance by instance.
func (c *Client) serveWriteComposite(req *request) {
	if !req.path.IsRoot() {
		c.fail(req, fmt.Errorf("iPATCH %v: Write-Composite addresses /: %w", req.path, ErrNotAllowed))
		return
	}
	entries, err := c.decode(req, lwm2m.Root)
	if err != nil {
		c.fail(req, err)
		return
	}
	groups := map[lwm2m.Path][]lwm2m.Entry{}
	var order []lwm2m.Path
	for _, e := range entries {
		if e.Path.Len() < 3 {
			c.fail(req, fmt.Errorf("write-composite: %v is not a resource: %w", e.Path, ErrBadRequest))
			return
		}
		if e.Path.Object() == 0 {
			c.fail(req, fmt.Errorf("write-composite %v: %w", e.Path, ErrUnauthorized))
			return
		}
		if err := c.checkWritable(e.Path); err != nil {
			c.fail(req, err)
			return
		}
		ip := lwm2m.InstancePath(e.Path.Object(), e.Path.Instance())
		if _, ok := groups[ip]; !ok {
			order = append(order, ip)
		}
		groups[ip] = append(groups[ip], e)
	}
	for _, ip := range order {
		if err := c.Object(ip.Object()).Write(ip, groups[ip], false); err != nil {
			c.fail(req, err)
			return
		}
	}
	c.respond(req, codes.Changed, message.TextPlain, nil)
}

// checkWritable checks that resource p exists and may be written.
func (c *Client) checkWritable(p lwm2m.Path) error {
	o := c.Object(p.Object())
	if o == nil {
		return notFound(p)
	}
	if so, ok := o.(*SimpleObject); ok {
		// A writable resource may have no value yet, so it is not among
		// the instance's present resources: the definition decides.
		if _, err := so.Resources(p.Instance()); err != nil {
			return err
		}
		d, ok := so.Def(p.Resource())
		if !ok {
			return notFound(p)
		}
		if !d.Writable() {
			return fmt.Errorf("write %v: resource is not writable: %w", p, ErrNotAllowed)
		}
		return nil
	}
	defs, err := o.Resources(p.Instance())
	if err != nil {
		return err
	}
	for _, d := range defs {
		if d.ID == p.Resource() {
			if !d.Writable() {
				return fmt.Errorf("write %v: resource is not writable: %w", p, ErrNotAllowed)
			}
			return nil
		}
	}
	return notFound(p)
}

// ErrNotConnected is returned by Send while the device has no session
// with the server (not registered yet, or asleep in queue mode).
var ErrNotConnected = errors.New("client: not connected to the server")

// Send reports the current values at paths to the server unasked (LwM2M
// Core 6.4.1, "Send" operation: POST /dp in SenML CBOR).
func (c *Client) Send(ctx context.Context, paths ...lwm2m.Path) error {
	if len(paths) == 0 {
		return errors.New("send: no paths")
	}
	entries, err := c.readComposite(paths)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	body, err := lwm2m.Encode(lwm2m.FormatSenMLCBOR, lwm2m.Root, entries)
	if err != nil {
		return fmt.Errorf("send: encode: %w", err)
	}
	conn := c.currentConn()
	if conn == nil {
		return fmt.Errorf("send: %w", ErrNotConnected)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	resp, err := conn.Post(ctx, "/dp", message.MediaType(lwm2m.FormatSenMLCBOR), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	defer conn.ReleaseMessage(resp)
	c.touch()
	if resp.Code() != codes.Changed {
		return fmt.Errorf("send: server answered %v", resp.Code())
	}
	return nil
}
