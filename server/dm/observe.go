package dm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// ErrNotObserved is returned when cancelling an observation that does not exist.
var ErrNotObserved = errors.New("no such observation")

// Observe starts observing path (LwM2M Core 6.4.1; RFC 7641). The
// observation is stored, so notifications keep arriving after a server
// restart: they are matched by token. It returns the first response.
func (s *Server) Observe(ctx context.Context, ep, path string, accept *lwm2m.ContentFormat) (*Response, error) {
	return s.observe(ctx, ep, []string{path}, false, accept)
}

// ObserveComposite observes several paths in one FETCH (LwM2M Core 6.4.3).
func (s *Server) ObserveComposite(ctx context.Context, ep string, paths []string, accept lwm2m.ContentFormat) (*Response, error) {
	return s.observe(ctx, ep, paths, true, &accept)
}

func (s *Server) observe(ctx context.Context, ep string, paths []string, composite bool, accept *lwm2m.ContentFormat) (*Response, error) {
	s.mu.Lock()
	d := s.byEP[ep]
	s.mu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, ep)
	}
	zero := uint32(0)
	tok := newToken()
	req := Request{Method: codes.GET, Path: paths[0], Observe: &zero, Token: tok, Accept: accept}
	if composite {
		body, err := compositeRequest(paths)
		if err != nil {
			return nil, err
		}
		req = Request{Method: codes.FETCH, Path: "/", Observe: &zero, Token: tok, Accept: accept,
			Format: fmtPtr(lwm2m.FormatSenMLJSON), Payload: body}
	}
	o := &store.Observation{Token: tok, Endpoint: ep, RegID: d.ID(), Paths: paths, Composite: composite, Created: time.Now().UTC()}
	if accept != nil {
		o.Format = uint16(*accept)
	}
	// Known before the request goes out: the first notification may
	// overtake our bookkeeping.
	s.mu.Lock()
	s.obs[string(tok)] = o
	s.mu.Unlock()
	resp, err := s.Do(ctx, ep, req)
	if err != nil || !resp.Success() || !resp.Observe {
		s.mu.Lock()
		delete(s.obs, string(tok))
		s.mu.Unlock()
		if err == nil && resp.Success() {
			err = fmt.Errorf("observe %v: device answered without Observe option", paths)
		}
		return resp, err
	}
	// Replace earlier observations of the same paths.
	for _, old := range s.observationsOf(ep) {
		if string(old.Token) != string(tok) && samePaths(old.Paths, paths) && old.Composite == composite {
			s.forget(old)
		}
	}
	if err := s.store.PutObservation(*o); err != nil {
		return resp, fmt.Errorf("store observation: %w", err)
	}
	return resp, nil
}

func samePaths(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (s *Server) observationsOf(ep string) []*store.Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Observation
	for _, o := range s.obs {
		if o.Endpoint == ep {
			out = append(out, o)
		}
	}
	return out
}

// Observations returns the observations held on a device.
func (s *Server) Observations(ep string) []store.Observation {
	var out []store.Observation
	for _, o := range s.observationsOf(ep) {
		out = append(out, *o)
	}
	return out
}

func (s *Server) forget(o *store.Observation) {
	s.mu.Lock()
	delete(s.obs, string(o.Token))
	s.mu.Unlock()
	if err := s.store.DeleteObservation(o.Token); err != nil {
		s.log.Error("delete observation", "endpoint", o.Endpoint, "err", err)
	}
}

// CancelObservation ends the observation of path (or of the composite
// paths) with a GET carrying Observe=1 (RFC 7641 3.6, proactive cancel).
// The observation is forgotten even when the device does not answer.
func (s *Server) CancelObservation(ctx context.Context, ep string, paths []string, composite bool) (*Response, error) {
	var o *store.Observation
	for _, x := range s.observationsOf(ep) {
		if samePaths(x.Paths, paths) && x.Composite == composite {
			o = x
			break
		}
	}
	if o == nil {
		return nil, fmt.Errorf("%w: %s %v", ErrNotObserved, ep, paths)
	}
	s.forget(o)
	one := uint32(1)
	req := Request{Method: codes.GET, Path: paths[0], Observe: &one, Token: o.Token}
	if composite {
		body, _ := compositeRequest(paths)
		req = Request{Method: codes.FETCH, Path: "/", Observe: &one, Token: o.Token, Format: fmtPtr(lwm2m.FormatSenMLJSON), Payload: body}
	}
	return s.Do(ctx, ep, req)
}

// handleNotification receives responses no request waits for: the
// notifications of observations (go-coap no longer knows observations we
// restored from the store, so every notification comes here). Unknown
// tokens are rejected (reject).
func (s *Server) handleNotification(w mux.ResponseWriter, r *mux.Message) {
	sess := transport.SessionFrom(r.Context())
	s.mu.Lock()
	o := s.obs[string(r.Token())]
	var d *Device
	if o != nil {
		d = s.byID[o.RegID]
	}
	s.mu.Unlock()
	if o == nil || d == nil || sess == nil {
		s.log.Debug("notification for unknown observation, reset", "token", r.Token().String())
		reject(w, r)
		return
	}
	if err := s.checkIdentity(sess, d.Endpoint()); err != nil {
		s.log.Warn("security: notification refused", "endpoint", d.Endpoint(), "from", sess.RemoteAddr(), "err", err)
		reject(w, r)
		return
	}
	if d.Session() != sess {
		d.bind(sess, time.Now())
	} else {
		d.seen(time.Now())
	}
	payload, err := readPayload(r, maxResponse)
	if err != nil {
		s.log.Warn("notification body", "endpoint", d.Endpoint(), "err", err)
		return
	}
	resp := &Response{Code: r.Code(), Payload: payload, Observe: true}
	if cf, err := r.Options().ContentFormat(); err == nil {
		resp.Format, resp.HasFmt = lwm2m.ContentFormat(cf), true
	}
	if !resp.Success() {
		// An error code ends the observation (RFC 7641 3.2).
		s.forget(o)
	}
	s.events.Publish(events.Event{Type: events.Notification, Endpoint: d.Endpoint(), Data: map[string]any{
		"ep": d.Endpoint(), "res": o.Paths[0], "paths": o.Paths, "composite": o.Composite, "val": ResponseJSON(resp, o.Paths[0]),
	}})
}

// reject answers a notification nobody wants. A NON one gets a Reset
// (RFC 7641 3.6; RFC 7252 4.3: an empty message echoing its message ID),
// written directly because go-coap would give it a new message ID and the
// token. go-coap turns any answer to a CON message into an ACK, so a CON
// one gets the plain empty ACK go-coap sends when the handler leaves the
// answer alone; the device keeps notifying until its observation ends
// otherwise.
func reject(w mux.ResponseWriter, r *mux.Message) {
	if r.Type() != message.NonConfirmable {
		return
	}
	cc, ok := w.Conn().(*udpClient.Conn)
	if !ok {
		return
	}
	m := cc.AcquireMessage(r.Context())
	defer cc.ReleaseMessage(m)
	m.SetType(message.Reset)
	m.SetCode(codes.Empty)
	m.SetMessageID(r.MessageID())
	_ = cc.Session().WriteMessage(m)
}

// handleSend is the device's Send operation: POST /dp with SenML (LwM2M
// Core 6.4.4).
func (s *Server) handleSend(w mux.ResponseWriter, r *mux.Message, _ []string) {
	sess := transport.SessionFrom(r.Context())
	d := s.DeviceOfSession(sess)
	if d == nil {
		s.log.Warn("send from unregistered peer", "from", sess.RemoteAddr())
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	payload, err := readPayload(r, maxResponse)
	if err != nil {
		_ = w.SetResponse(codes.RequestEntityTooLarge, message.TextPlain, nil)
		return
	}
	resp := &Response{Code: codes.Content, Payload: payload}
	if cf, err := r.Options().ContentFormat(); err == nil {
		resp.Format, resp.HasFmt = lwm2m.ContentFormat(cf), true
	}
	d.seen(time.Now())
	_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	s.events.Publish(events.Event{Type: events.Send, Endpoint: d.Endpoint(), Data: map[string]any{
		"ep": d.Endpoint(), "val": ResponseJSON(resp, "/"),
	}})
}

// DeviceOfSession finds the registered device speaking over sess: the one
// bound to it, or (after a restart) the one registered from its address.
func (s *Server) DeviceOfSession(sess *transport.Session) *Device {
	if sess == nil {
		return nil
	}
	addr := sess.RemoteAddr().String()
	// A secure session names its endpoint (PSK identity through the
	// security store, certificate CN directly): one look-up, not a scan
	// of every device, which at 100,000 devices is what each Send cost.
	if ep := s.endpointOfIdentity(sess); ep != "" {
		s.mu.Lock()
		d := s.byEP[ep]
		s.mu.Unlock()
		if d != nil {
			reg := d.Registration()
			if d.Session() == sess || (reg.Address == addr && reg.Transport == sess.Scheme) {
				return d
			}
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var byAddr *Device
	for _, d := range s.byID {
		if d.Session() == sess {
			return d
		}
		reg := d.Registration()
		if reg.Address == addr && reg.Transport == sess.Scheme {
			byAddr = d
		}
	}
	if byAddr != nil && s.checkIdentity(sess, byAddr.Endpoint()) == nil {
		return byAddr
	}
	return nil
}

// endpointOfIdentity is the endpoint a secure session authenticated as
// ("" for plain CoAP or an identity with no credential).
func (s *Server) endpointOfIdentity(sess *transport.Session) string {
	switch sess.Security {
	case transport.SecurityPSK:
		if c, err := s.store.CredentialByIdentity(sess.Identity); err == nil {
			return c.Endpoint
		}
	case transport.SecurityX509:
		return sess.Identity
	}
	return ""
}
