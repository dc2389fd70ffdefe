package dm

import (
	"context"
	"fmt"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/lwm2m"
)

// Device management and service enablement operations (LwM2M Core 6.3),
// each one CoAP exchange over the device's own session. format 0 (text)
// is a real format; pass nil-able pointers through Request for full
// control, or use these for the common cases.

// Read reads an object, instance, resource or resource instance. accept
// nil lets the device choose; the HTTP API passes the device's best format
// for multi-value reads.
func (s *Server) Read(ctx context.Context, ep, path string, accept *lwm2m.ContentFormat) (*Response, error) {
	return s.Do(ctx, ep, Request{Method: codes.GET, Path: path, Accept: accept})
}

// Discover lists the objects, instances, resources and attributes below
// path (LwM2M Core 6.3.2) as link format.
func (s *Server) Discover(ctx context.Context, ep, path string) (*Response, error) {
	return s.Do(ctx, ep, Request{Method: codes.GET, Path: path, Accept: fmtPtr(lwm2m.FormatLinkFormat)})
}

// Write writes payload in format to path: replace (PUT) or partial update
// (POST) (LwM2M Core 6.3.3).
func (s *Server) Write(ctx context.Context, ep, path string, replace bool, format lwm2m.ContentFormat, payload []byte) (*Response, error) {
	m := codes.POST
	if replace {
		m = codes.PUT
	}
	return s.Do(ctx, ep, Request{Method: m, Path: path, Format: &format, Payload: payload})
}

// WriteAttributes sets notification attributes such as "pmin=10",
// "pmax=60", "gt=20.5", "lt=5", "st=1" (LwM2M Core 6.3.4, 5.1.2); "pmin"
// alone removes that attribute.
func (s *Server) WriteAttributes(ctx context.Context, ep, path string, attrs []string) (*Response, error) {
	return s.Do(ctx, ep, Request{Method: codes.PUT, Path: path, Query: attrs})
}

// Execute executes a resource with optional arguments ("0='v',1" syntax,
// LwM2M Core 5.4.2).
func (s *Server) Execute(ctx context.Context, ep, path, args string) (*Response, error) {
	var p []byte
	if args != "" {
		p = []byte(args)
	}
	return s.Do(ctx, ep, Request{Method: codes.POST, Path: path, Payload: p})
}

// Create creates an object instance (LwM2M Core 6.3.6).
func (s *Server) Create(ctx context.Context, ep, objectPath string, format lwm2m.ContentFormat, payload []byte) (*Response, error) {
	return s.Do(ctx, ep, Request{Method: codes.POST, Path: objectPath, Format: &format, Payload: payload})
}

// Delete deletes an object instance (LwM2M Core 6.3.7).
func (s *Server) Delete(ctx context.Context, ep, path string) (*Response, error) {
	return s.Do(ctx, ep, Request{Method: codes.DELETE, Path: path})
}

// compositeRequest is the SenML JSON list of names that Read-Composite and
// Observe-Composite send (LwM2M Core 6.3.8, Transport 7.4.5).
func compositeRequest(paths []string) ([]byte, error) {
	var b strings.Builder
	b.WriteByte('[')
	for i, p := range paths {
		if _, err := lwm2m.ParsePath(p); err != nil {
			return nil, fmt.Errorf("composite path %q: %w", p, err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"n":%q}`, p)
	}
	b.WriteByte(']')
	return []byte(b.String()), nil
}

// ReadComposite reads several paths in one FETCH (LwM2M Core 6.3.8).
func (s *Server) ReadComposite(ctx context.Context, ep string, paths []string, accept lwm2m.ContentFormat) (*Response, error) {
	body, err := compositeRequest(paths)
	if err != nil {
		return nil, err
	}
	return s.Do(ctx, ep, Request{Method: codes.FETCH, Path: "/", Format: fmtPtr(lwm2m.FormatSenMLJSON), Accept: &accept, Payload: body})
}

// WriteComposite writes several resources in one iPATCH (LwM2M Core
// 6.3.9); payload is SenML JSON or CBOR.
func (s *Server) WriteComposite(ctx context.Context, ep string, format lwm2m.ContentFormat, payload []byte) (*Response, error) {
	return s.Do(ctx, ep, Request{Method: codes.IPATCH, Path: "/", Format: &format, Payload: payload})
}
