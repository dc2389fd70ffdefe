package dm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// Limits of the registration interface.
const (
	maxLinksLen = 16 << 10 // object links of a registration
	defaultLife = 86400    // LwM2M Core 6.2.1: lt defaults to 86400 s
)

// ErrBadRegistration marks a registration request we refuse with 4.00.
var ErrBadRegistration = errors.New("bad registration")

// RegisterParams are the parameters of a Register or Update request
// (LwM2M Core 6.2.1, 6.2.2; Transport 6.4).
type RegisterParams struct {
	Endpoint string
	Lifetime uint32 // seconds; 0 in an Update means unchanged
	Version  string // "1.0", "1.1", "1.2"
	Binding  string // "" in an Update means unchanged
	Queue    bool
	SMS      string
	Links    string // link-format payload; "" in an Update means unchanged
}

// ParseRegistration parses the Uri-Query options and payload of a Register
// request. Unknown parameters are ignored (LwM2M Core 6.2.1 lets later
// versions add parameters); a missing ep, a bad lt or lwm2m, or a payload
// that is not a link list are errors wrapping ErrBadRegistration.
func ParseRegistration(queries []string, payload []byte) (RegisterParams, error) {
	p, _, err := parseRegistration(queries, payload)
	return p, err
}

// parseRegistration is ParseRegistration that also returns the content
// formats the links announce (ct).
func parseRegistration(queries []string, payload []byte) (RegisterParams, []lwm2m.ContentFormat, error) {
	p := RegisterParams{Lifetime: defaultLife, Version: "1.0", Binding: "U"}
	if err := parseQueries(&p, queries, true); err != nil {
		return p, nil, err
	}
	if p.Endpoint == "" {
		return p, nil, fmt.Errorf("%w: missing endpoint name (ep)", ErrBadRegistration)
	}
	links, formats, err := checkLinks(payload)
	if err != nil {
		return p, nil, err
	}
	p.Links = links
	return p, formats, nil
}

// ParseUpdate parses the Uri-Query options of an Update request; zero
// fields are unchanged.
func ParseUpdate(queries []string, payload []byte) (RegisterParams, error) {
	p, _, err := parseUpdate(queries, payload)
	return p, err
}

// parseUpdate is ParseUpdate that also returns the content formats new
// links announce.
func parseUpdate(queries []string, payload []byte) (RegisterParams, []lwm2m.ContentFormat, error) {
	var p RegisterParams
	if err := parseQueries(&p, queries, false); err != nil {
		return p, nil, err
	}
	var formats []lwm2m.ContentFormat
	if len(payload) > 0 {
		links, f, err := checkLinks(payload)
		if err != nil {
			return p, nil, err
		}
		p.Links, formats = links, f
	}
	return p, formats, nil
}

func parseQueries(p *RegisterParams, queries []string, register bool) error {
	for _, q := range queries {
		k, v, _ := strings.Cut(q, "=")
		switch k {
		case "ep":
			if !register {
				continue
			}
			if !lwm2m.ValidEndpoint(v) {
				return fmt.Errorf("%w: endpoint name %q", ErrBadRegistration, v)
			}
			p.Endpoint = v
		case "lt":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return fmt.Errorf("%w: lifetime %q", ErrBadRegistration, v)
			}
			p.Lifetime = uint32(n)
		case "lwm2m":
			switch v {
			case "1.0", "1.1", "1.2":
				p.Version = v
			default:
				return fmt.Errorf("%w: lwm2m version %q", ErrBadRegistration, v)
			}
		case "b":
			if v == "" || len(v) > 8 || strings.Trim(v, "UQSNT") != "" {
				return fmt.Errorf("%w: binding %q", ErrBadRegistration, v)
			}
			p.Binding = v
			// LwM2M 1.0 signals queue mode in the binding (UQ, SQ, UQS).
			if strings.Contains(v, "Q") {
				p.Queue = true
			}
		case "Q":
			p.Queue = true
		case "sms":
			p.SMS = v
		}
	}
	return nil
}

// checkLinks accepts a CoRE link list (RFC 6690) of object links:
// every link is <...> followed by optional ;attributes. It returns the
// list and the content formats it announces.
func checkLinks(b []byte) (string, []lwm2m.ContentFormat, error) {
	if len(b) > maxLinksLen {
		return "", nil, fmt.Errorf("%w: object links of %d bytes", ErrBadRegistration, len(b))
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", nil, nil
	}
	for _, l := range splitLinks(s) {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "<") || !strings.Contains(l, ">") {
			return "", nil, fmt.Errorf("%w: object link %q", ErrBadRegistration, l)
		}
	}
	// The full RFC 6690 / LwM2M Core 6.2.1 reading (objects, versions, ct).
	pl, err := lwm2m.ParseRegistrationPayload([]byte(s))
	if err != nil {
		return "", nil, fmt.Errorf("%w: object links: %v", ErrBadRegistration, err)
	}
	return s, pl.Formats, nil
}

// splitLinks splits a link list at commas outside quotes.
func splitLinks(s string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// readPayload reads a request body up to max bytes; more is an error.
func readPayload(r *mux.Message, max int) ([]byte, error) {
	if r.Body() == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body(), int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, errTooLarge
	}
	return b, nil
}

var errTooLarge = errors.New("payload too large")

func newRegID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) handleRegister(w mux.ResponseWriter, r *mux.Message, _ []string) {
	start := time.Now()
	sess := transport.SessionFrom(r.Context())
	if sess == nil {
		_ = w.SetResponse(codes.InternalServerError, message.TextPlain, nil)
		return
	}
	payload, err := readPayload(r, maxLinksLen)
	if err != nil {
		s.log.Warn("register refused: payload", "from", sess.RemoteAddr(), "err", err)
		_ = w.SetResponse(codes.RequestEntityTooLarge, message.TextPlain, nil)
		return
	}
	queries, _ := r.Options().Queries()
	p, formats, err := parseRegistration(queries, payload)
	if err != nil {
		s.log.Warn("register refused", "from", sess.RemoteAddr(), "err", err)
		_ = w.SetResponse(codes.BadRequest, message.TextPlain, bytes.NewReader([]byte(err.Error())))
		return
	}
	if err := s.checkIdentity(sess, p.Endpoint); err != nil {
		s.log.Warn("security: register refused", "endpoint", p.Endpoint, "from", sess.RemoteAddr(),
			"security", sess.Security, "identity", sess.Identity, "err", err)
		_ = w.SetResponse(codes.Forbidden, message.TextPlain, nil)
		return
	}
	now := time.Now()
	reg := store.Registration{
		ID: newRegID(), Endpoint: p.Endpoint, Lifetime: p.Lifetime, Version: p.Version,
		Binding: p.Binding, Queue: p.Queue, SMS: p.SMS, Links: p.Links,
		Address: sess.RemoteAddr().String(), Transport: sess.Scheme, Security: sess.Security,
		Identity: sess.Identity, Created: now, Updated: now,
	}
	if err := s.putRegistration(reg); err != nil {
		s.log.Error("register: store", "endpoint", p.Endpoint, "err", err)
		_ = w.SetResponse(codes.InternalServerError, message.TextPlain, nil)
		return
	}
	d := newDevice(reg)
	d.bind(sess, now)
	d.knowFormats(formats)
	s.mu.Lock()
	old := s.byEP[p.Endpoint]
	if old != nil {
		delete(s.byID, old.ID())
	}
	s.byID[reg.ID] = d
	s.byEP[p.Endpoint] = d
	s.mu.Unlock()
	if old != nil {
		// A new Register replaces the old registration of the endpoint
		// (LwM2M Core 6.2.1); its observations end with it.
		s.dropRegistration(old)
	}
	sess.KeepUntil(reg.Expires().Add(time.Minute))
	_ = w.SetResponse(codes.Created, message.TextPlain, nil)
	s.regStats.register.Observe(time.Since(start))
	w.Message().SetOptionString(message.LocationPath, "rd")
	w.Message().AddOptionString(message.LocationPath, reg.ID)
	s.log.Info("registered", "endpoint", reg.Endpoint, "id", reg.ID, "lt", reg.Lifetime, "lwm2m", reg.Version,
		"binding", reg.Binding, "queue", reg.Queue, "transport", reg.Transport, "security", reg.Security)
	if s.events.Active() { // clientJSON costs a map and a parse of the links
		s.events.Publish(events.Event{Type: events.Registration, Endpoint: reg.Endpoint, Data: ClientJSON(d)})
	}
}

func (s *Server) deviceByID(id string) *Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

func (s *Server) handleUpdate(w mux.ResponseWriter, r *mux.Message, args []string) {
	start := time.Now()
	sess := transport.SessionFrom(r.Context())
	d := s.deviceByID(args[0])
	if d == nil || sess == nil {
		s.log.Warn("update for unknown registration", "id", args[0])
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	if err := s.checkIdentity(sess, d.Endpoint()); err != nil {
		s.log.Warn("security: update refused", "endpoint", d.Endpoint(), "from", sess.RemoteAddr(), "identity", sess.Identity, "err", err)
		_ = w.SetResponse(codes.Forbidden, message.TextPlain, nil)
		return
	}
	payload, err := readPayload(r, maxLinksLen)
	if err != nil {
		_ = w.SetResponse(codes.RequestEntityTooLarge, message.TextPlain, nil)
		return
	}
	queries, _ := r.Options().Queries()
	p, formats, err := parseUpdate(queries, payload)
	if err != nil {
		s.log.Warn("update refused", "endpoint", d.Endpoint(), "err", err)
		_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
		return
	}
	now := time.Now()
	reg := d.update(p, sess, now)
	if p.Links != "" {
		d.knowFormats(formats)
	}
	if err := s.putRegistration(reg); err != nil {
		s.log.Error("update: store", "endpoint", reg.Endpoint, "err", err)
		_ = w.SetResponse(codes.InternalServerError, message.TextPlain, nil)
		return
	}
	sess.KeepUntil(reg.Expires().Add(time.Minute))
	_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	s.regStats.update.Observe(time.Since(start))
	s.log.Debug("updated", "endpoint", reg.Endpoint, "id", reg.ID)
	if s.events.Active() {
		s.events.Publish(events.Event{Type: events.Updated, Endpoint: reg.Endpoint, Data: ClientJSON(d)})
	}
	// LwM2M Core 6.5: a queue-mode client is reachable after it sent an
	// Update; send what waited for it once this answer is out.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.flushQueue(d)
	}()
}

func (s *Server) handleDeregister(w mux.ResponseWriter, r *mux.Message, args []string) {
	sess := transport.SessionFrom(r.Context())
	d := s.deviceByID(args[0])
	if d == nil || sess == nil {
		s.log.Warn("de-register for unknown registration", "id", args[0])
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	if err := s.checkIdentity(sess, d.Endpoint()); err != nil {
		s.log.Warn("security: de-register refused", "endpoint", d.Endpoint(), "from", sess.RemoteAddr(), "err", err)
		_ = w.SetResponse(codes.Forbidden, message.TextPlain, nil)
		return
	}
	s.removeDevice(d, false)
	_ = w.SetResponse(codes.Deleted, message.TextPlain, nil)
}

// removeDevice ends a registration: store, memory, queued requests, event.
func (s *Server) removeDevice(d *Device, expired bool) {
	s.mu.Lock()
	if s.byID[d.ID()] != d {
		s.mu.Unlock()
		return
	}
	delete(s.byID, d.ID())
	if s.byEP[d.Endpoint()] == d {
		delete(s.byEP, d.Endpoint())
	}
	s.mu.Unlock()
	s.dropRegistration(d)
	s.log.Info("de-registered", "endpoint", d.Endpoint(), "id", d.ID(), "expired", expired)
	s.events.Publish(events.Event{Type: events.Deregistration, Endpoint: d.Endpoint(), Data: map[string]any{
		"endpoint": d.Endpoint(), "registrationId": d.ID(), "expired": expired}})
}

// dropRegistration deletes a registration's stored state and fails its
// queued requests.
func (s *Server) dropRegistration(d *Device) {
	t := time.Now()
	err := s.store.DeleteRegistration(d.ID())
	s.regStats.storeWrite.Observe(time.Since(t))
	if err != nil {
		s.log.Error("delete registration", "id", d.ID(), "err", err)
	}
	s.mu.Lock()
	for k, o := range s.obs {
		if o.RegID == d.ID() {
			delete(s.obs, k)
		}
	}
	s.mu.Unlock()
	d.close()
}
