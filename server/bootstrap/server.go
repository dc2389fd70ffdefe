package bootstrap

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/coapmux"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/transport"
)

// Options configures a Server.
type Options struct {
	// Store keeps configurations and bootstrap credentials (required).
	Store store.BootstrapStore
	// DMStore is the DM server's security store: PSKs generated for a
	// device's DM account are entered there. Nil: generatePsk is refused.
	DMStore store.CredentialStore
	// DMURI is written for DM accounts whose config leaves the URI empty:
	// the management server's own coaps URI.
	DMURI string
	// CoAPAddr and CoAPSAddr are the listen addresses ("" = off); LwM2M's
	// defaults for the bootstrap server are :5783 and :5784.
	CoAPAddr, CoAPSAddr string
	// SessionTimeout bounds one bootstrap session from Bootstrap-Request
	// to Bootstrap-Finish (default 60 s): a device that stops half way is
	// given up after it.
	SessionTimeout time.Duration
	// RequestTimeout bounds each request to the device (default 10 s).
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// Server is the LwM2M bootstrap server (LwM2M Core 5.2, 6.1):
// it answers Bootstrap-Request and Bootstrap-Pack-Request on its own CoAP
// and DTLS listeners and writes each device the configuration stored for
// its endpoint.
type Server struct {
	opts   Options
	log    *slog.Logger
	store  store.BootstrapStore
	router *coapmux.Router
	udp    *transport.UDP
	dtls   *transport.DTLS

	mu       sync.Mutex
	closed   bool
	sessions map[string]*bootstrapSession // running, by endpoint
	status   map[string]Status
	changed  chan struct{} // closed and replaced on every status change

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Status is the outcome of the last bootstrap of an endpoint.
type Status struct {
	Endpoint string    `json:"endpoint"`
	State    string    `json:"state"` // running, finished, failed
	Error    string    `json:"error,omitempty"`
	Format   string    `json:"format,omitempty"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
}

// ErrIdentity marks a device asking for the bootstrap of an endpoint it
// has not authenticated as (LwM2M Core 7.2.1: the endpoint name must
// belong to the credentials of the secure session).
var ErrIdentity = errors.New("identity does not match endpoint")

// maxLinksLen bounds the link-format answer of a Bootstrap-Discover.
const maxLinksLen = 16 << 10

// Bootstrap session states.
const (
	Running  = "running"
	Finished = "finished"
	Failed   = "failed"
)

type bootstrapSession struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Start starts the bootstrap server's listeners.
func Start(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("bootstrap server: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = 60 * time.Second
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	b := &Server{
		opts: opts, log: opts.Logger.With("component", "bootstrap"), store: opts.Store,
		router:   coapmux.NewRouter(),
		sessions: map[string]*bootstrapSession{},
		status:   map[string]Status{},
		changed:  make(chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.router.Handle("POST", "bs", b.handleRequest)
	b.router.Handle("GET", "bspack", b.handlePack)
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	if opts.CoAPAddr != "" {
		u, err := transport.ListenUDP(opts.CoAPAddr, b.router, b.log)
		if err != nil {
			return nil, fmt.Errorf("bootstrap coap: %w", err)
		}
		b.udp = u
		b.log.Info("bootstrap coap listening", "addr", u.Addr())
	}
	if opts.CoAPSAddr != "" {
		d, err := transport.ListenDTLS(opts.CoAPSAddr, transport.DTLSConfig{Handler: b.router, PSK: b.pskKey, Logger: b.log})
		if err != nil {
			return nil, fmt.Errorf("bootstrap coaps: %w", err)
		}
		b.dtls = d
		b.log.Info("bootstrap coaps listening", "addr", d.Addr())
	}
	ok = true
	return b, nil
}

// CoAPAddr is the plain CoAP listener's address, or nil.
func (b *Server) CoAPAddr() net.Addr {
	if b.udp == nil {
		return nil
	}
	return b.udp.Addr()
}

// CoAPSAddr is the DTLS listener's address, or nil.
func (b *Server) CoAPSAddr() net.Addr {
	if b.dtls == nil {
		return nil
	}
	return b.dtls.Addr()
}

// BootstrapIdentity reports the endpoint whose bootstrap credential has
// this PSK identity (for Server.ReserveIdentities).
func (b *Server) BootstrapIdentity(identity string) (endpoint string, ok bool) {
	c, err := b.store.BootstrapCredentialByIdentity(identity)
	return c.Endpoint, err == nil
}

// Close stops the listeners and every running session, and waits for them.
func (b *Server) Close() error {
	b.mu.Lock()
	b.closed = true // no session starts after this (wg.Add before Wait)
	b.mu.Unlock()
	b.cancel()
	if b.udp != nil {
		_ = b.udp.Close()
	}
	if b.dtls != nil {
		_ = b.dtls.Close()
	}
	b.wg.Wait()
	return nil
}

// Status returns the last bootstrap outcome of ep.
func (b *Server) Status(ep string) (Status, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.status[ep]
	return s, ok
}

// WaitStatus waits for the outcome of a bootstrap of ep that started at
// or after since, and returns it; ctx bounds the wait.
func (b *Server) WaitStatus(ctx context.Context, ep string, since time.Time) (Status, error) {
	for {
		b.mu.Lock()
		s, ok := b.status[ep]
		ch := b.changed
		b.mu.Unlock()
		if ok && s.State != Running && !s.Started.Before(since) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("wait for bootstrap of %q: %w", ep, ctx.Err())
		case <-ch:
		}
	}
}

func (b *Server) setStatus(s Status) {
	b.mu.Lock()
	b.status[s.Endpoint] = s
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// pskKey is pion's PSK callback over the bootstrap credentials only.
func (b *Server) pskKey(identity []byte) ([]byte, error) {
	c, err := b.store.BootstrapCredentialByIdentity(string(identity))
	if err != nil {
		return nil, fmt.Errorf("bootstrap psk identity %q: %w", identity, err)
	}
	if c.Mode != transport.SecurityPSK || len(c.Key) == 0 {
		return nil, fmt.Errorf("bootstrap psk identity %q: endpoint %q is not in psk mode", identity, c.Endpoint)
	}
	return c.Key, nil
}

// checkIdentity decides whether the peer of sess may bootstrap as ep: a
// secure session must carry ep's own bootstrap credential; plain CoAP is
// allowed only for endpoints without one (LwM2M Core 7.2.1).
func (b *Server) checkIdentity(sess *transport.Session, ep string) error {
	c, err := b.store.BootstrapCredential(ep)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read bootstrap credential of %q: %w", ep, err)
	}
	has := err == nil
	switch sess.Security {
	case transport.SecurityNone:
		if has {
			return fmt.Errorf("%w: endpoint %q has a %s bootstrap credential, plain CoAP refused", ErrIdentity, ep, c.Mode)
		}
		return nil
	case transport.SecurityPSK:
		if !has || c.Mode != transport.SecurityPSK || subtle.ConstantTimeCompare([]byte(c.Identity), []byte(sess.Identity)) != 1 {
			return fmt.Errorf("%w: psk identity %q is not endpoint %q's bootstrap identity", ErrIdentity, sess.Identity, ep)
		}
		return nil
	}
	return fmt.Errorf("%w: %s sessions are not accepted for bootstrap", ErrIdentity, sess.Security)
}

// bootstrapQuery reads ep= and pct= of a Bootstrap-Request or
// Bootstrap-Pack-Request (LwM2M Core 6.1.5, 8.2.5).
func bootstrapQuery(r *mux.Message) (ep string, pct lwm2m.ContentFormat, err error) {
	qs, _ := r.Options().Queries()
	return parseBootstrapQuery(qs)
}

func parseBootstrapQuery(qs []string) (ep string, pct lwm2m.ContentFormat, err error) {
	for _, q := range qs {
		k, v, _ := strings.Cut(q, "=")
		switch k {
		case "ep":
			ep = v
		case "pct":
			n, perr := strconv.ParseUint(v, 10, 16)
			if perr != nil {
				return "", 0, fmt.Errorf("pct %q is not a content format", v)
			}
			pct = lwm2m.ContentFormat(n)
		}
	}
	if !lwm2m.ValidEndpoint(ep) {
		return "", 0, errors.New("missing or bad ep parameter")
	}
	return ep, pct, nil
}

// writeFormat picks the content format of Bootstrap-Writes: the device's
// preferred one (pct, LwM2M 1.1+) when we can encode it, TLV otherwise
// (every 1.0 device reads TLV).
func writeFormat(pct lwm2m.ContentFormat) lwm2m.ContentFormat {
	switch pct {
	case lwm2m.FormatTLV, lwm2m.FormatSenMLCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatLwM2MCBOR, lwm2m.FormatLwM2MJSON:
		return pct
	}
	return lwm2m.FormatTLV
}

func diag(w mux.ResponseWriter, code codes.Code, msg string) {
	_ = w.SetResponse(code, message.TextPlain, bytes.NewReader([]byte(msg)))
}

// admit checks a request for the bootstrap of ep and returns its
// configuration, answering the device itself when it fails.
func (b *Server) admit(w mux.ResponseWriter, r *mux.Message, what string) (*transport.Session, string, lwm2m.ContentFormat, *Config, bool) {
	sess := transport.SessionFrom(r.Context())
	if sess == nil {
		diag(w, codes.InternalServerError, "no session")
		return nil, "", 0, nil, false
	}
	ep, pct, err := bootstrapQuery(r)
	if err != nil {
		b.log.Warn(what+" refused", "from", sess.RemoteAddr(), "err", err)
		diag(w, codes.BadRequest, err.Error())
		return nil, "", 0, nil, false
	}
	if err := b.checkIdentity(sess, ep); err != nil {
		b.log.Warn("security: "+what+" refused", "endpoint", ep, "from", sess.RemoteAddr(), "identity", sess.Identity, "err", err)
		// LwM2M Core 8.2.5 lists 4.00 for a refused Bootstrap-Request; we
		// say no more than that to an unauthenticated peer.
		diag(w, codes.BadRequest, "bootstrap refused")
		return nil, "", 0, nil, false
	}
	cfg, err := b.store.BootstrapConfig(ep)
	if err != nil {
		b.log.Warn(what+" refused: no bootstrap configuration", "endpoint", ep, "from", sess.RemoteAddr(), "err", err)
		diag(w, codes.BadRequest, "no bootstrap configuration for this endpoint")
		return nil, "", 0, nil, false
	}
	return sess, ep, pct, cfg, true
}

// handleRequest answers a Bootstrap-Request (POST /bs?ep=..&pct=..) with
// 2.04 and starts the session that writes the configuration. The writes
// go out after this handler returned: go-coap sends the 2.04 only then.
func (b *Server) handleRequest(w mux.ResponseWriter, r *mux.Message, _ []string) {
	sess, ep, pct, cfg, ok := b.admit(w, r, "bootstrap request")
	if !ok {
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		diag(w, codes.ServiceUnavailable, "bootstrap server is shutting down")
		return
	}
	if old := b.sessions[ep]; old != nil {
		// The device asks again (it rebooted or gave up waiting): the old
		// session is over, its writes never reached a Finish.
		b.log.Info("bootstrap: new request replaces the running session", "endpoint", ep)
		old.cancel()
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.SessionTimeout)
	bs := &bootstrapSession{cancel: cancel, done: make(chan struct{})}
	b.sessions[ep] = bs
	b.wg.Add(1)
	b.mu.Unlock()
	f := writeFormat(pct)
	b.setStatus(Status{Endpoint: ep, State: Running, Format: f.String(), Started: time.Now()})
	b.log.Info("bootstrap request", "endpoint", ep, "from", sess.RemoteAddr(), "security", sess.Security, "format", f)
	_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	go func() {
		defer b.wg.Done()
		defer close(bs.done)
		defer cancel()
		err := b.run(ctx, sess.Conn, cfg, f)
		st := Status{Endpoint: ep, State: Finished, Format: f.String(), Ended: time.Now()}
		b.mu.Lock()
		current := b.sessions[ep] == bs
		if current {
			delete(b.sessions, ep)
		}
		if prev, ok := b.status[ep]; ok {
			st.Started = prev.Started
		}
		superseded := errors.Is(ctx.Err(), context.Canceled) && b.ctx.Err() == nil
		b.mu.Unlock()
		if current {
			// The bootstrap server has nothing more to say: end the DTLS
			// session, which tells the device it may close too (it waits
			// for that, so that its last answer is not cut off).
			_ = sess.Close()
		}
		if err != nil {
			if superseded {
				b.log.Info("bootstrap session superseded", "endpoint", ep)
				return // the new session reports
			}
			st.State, st.Error = Failed, err.Error()
			b.log.Warn("bootstrap failed", "endpoint", ep, "err", err)
		} else {
			b.log.Info("bootstrap finished", "endpoint", ep)
		}
		b.setStatus(st)
	}()
}

// run is one bootstrap session (LwM2M Core 6.1.7): Bootstrap-Delete of
// the configured paths, Bootstrap-Discover of /0 to learn which instances
// survived (the bootstrap account), Bootstrap-Write of each instance,
// Bootstrap-Finish.
func (b *Server) run(ctx context.Context, conn *udpClient.Conn, cfg *Config, f lwm2m.ContentFormat) error {
	for _, p := range cfg.ToDelete {
		if err := b.do(ctx, conn, codes.DELETE, p, 0, nil, codes.Deleted); err != nil {
			return fmt.Errorf("bootstrap-delete %s: %w", p, err)
		}
	}
	links, err := b.discover(ctx, conn, "/0")
	if err != nil {
		return fmt.Errorf("bootstrap-discover /0: %w", err)
	}
	// Security instances the device keeps (its bootstrap account) must
	// not be overwritten by a DM account with the same instance ID:
	// move ours to free IDs, as Leshan's autoIdForSecurityObject does.
	taken := map[uint16]bool{}
	for _, l := range links {
		if p, err := l.Path(""); err == nil && p.Len() == 2 && p.Object() == 0 {
			taken[p.Instance()] = true
		}
	}
	for _, i := range sortedIDs(cfg.Security) {
		s := cfg.Security[i]
		inst := i
		if taken[inst] && !s.BootstrapServer {
			for inst = 0; taken[inst]; inst++ {
			}
		}
		taken[inst] = true
		if err := b.write(ctx, conn, lwm2m.InstancePath(0, inst), securityEntries(s, inst), f); err != nil {
			return err
		}
	}
	for _, i := range sortedIDs(cfg.Servers) {
		if err := b.write(ctx, conn, lwm2m.InstancePath(1, i), serverEntries(cfg.Servers[i], i), f); err != nil {
			return err
		}
	}
	for _, i := range sortedIDs(cfg.ACLs) {
		if err := b.write(ctx, conn, lwm2m.InstancePath(2, i), aclEntries(cfg.ACLs[i], i), f); err != nil {
			return err
		}
	}
	if err := b.do(ctx, conn, codes.POST, "/bs", 0, nil, codes.Changed); err != nil {
		return fmt.Errorf("bootstrap-finish: %w", err)
	}
	return nil
}

func (b *Server) write(ctx context.Context, conn *udpClient.Conn, p lwm2m.Path, entries []lwm2m.Entry, f lwm2m.ContentFormat) error {
	body, err := lwm2m.Encode(f, p, entries)
	if err != nil {
		return fmt.Errorf("bootstrap-write %v: encode %v: %w", p, f, err)
	}
	if err := b.do(ctx, conn, codes.PUT, p.String(), f, body, codes.Changed); err != nil {
		return fmt.Errorf("bootstrap-write %v: %w", p, err)
	}
	return nil
}

// discover sends Bootstrap-Discover (GET with Accept: link-format, LwM2M
// Core 5.2.7.1) and parses the answer.
func (b *Server) discover(ctx context.Context, conn *udpClient.Conn, path string) ([]lwm2m.WebLink, error) {
	rctx, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
	defer cancel()
	resp, err := conn.Get(rctx, path, message.Option{ID: message.Accept, Value: uintOpt(uint32(lwm2m.FormatLinkFormat))})
	if err != nil {
		return nil, err
	}
	defer conn.ReleaseMessage(resp)
	if resp.Code() != codes.Content {
		return nil, fmt.Errorf("device answered %v%s", resp.Code(), diagOf(resp.Body()))
	}
	var data []byte
	if body := resp.Body(); body != nil {
		if data, err = io.ReadAll(io.LimitReader(body, maxLinksLen+1)); err != nil {
			return nil, err
		}
		if len(data) > maxLinksLen {
			return nil, fmt.Errorf("discover answer above %d bytes", maxLinksLen)
		}
	}
	// LwM2M Core 5.2.7.1: the answer may start with lwm2m="1.x", which is
	// no link; drop it before parsing.
	if bytes.HasPrefix(data, []byte("lwm2m=")) {
		if i := bytes.IndexByte(data, ','); i >= 0 {
			data = data[i+1:]
		} else {
			data = nil
		}
	}
	if len(data) == 0 {
		return nil, nil
	}
	return lwm2m.ParseLinks(data)
}

// do sends one request and expects code want; other codes become errors
// that carry the device's diagnostic payload.
func (b *Server) do(ctx context.Context, conn *udpClient.Conn, method codes.Code, path string, cf lwm2m.ContentFormat, body []byte, want codes.Code) error {
	rctx, cancel := context.WithTimeout(ctx, b.opts.RequestTimeout)
	defer cancel()
	req := conn.AcquireMessage(rctx)
	defer conn.ReleaseMessage(req)
	req.SetCode(method)
	if err := req.SetPath(path); err != nil {
		return err
	}
	req.SetType(message.Confirmable)
	req.SetMessageID(conn.GetMessageID())
	tok, err := message.GetToken()
	if err != nil {
		return err
	}
	req.SetToken(tok)
	if body != nil {
		req.SetContentFormat(message.MediaType(cf))
		req.SetBody(bytes.NewReader(body))
	}
	resp, err := conn.Do(req)
	if err != nil {
		return err
	}
	defer conn.ReleaseMessage(resp)
	if resp.Code() != want {
		return fmt.Errorf("device answered %v%s", resp.Code(), diagOf(resp.Body()))
	}
	return nil
}

func diagOf(body interface {
	Read([]byte) (int, error)
}) string {
	if body == nil {
		return ""
	}
	buf := make([]byte, 256)
	n, _ := body.Read(buf)
	if n == 0 {
		return ""
	}
	return ": " + strconv.Quote(string(buf[:n]))
}

// uintOpt encodes a CoAP uint option value (RFC 7252 3.2: minimal length).
func uintOpt(v uint32) []byte {
	switch {
	case v == 0:
		return nil
	case v < 1<<8:
		return []byte{byte(v)}
	case v < 1<<16:
		return []byte{byte(v >> 8), byte(v)}
	case v < 1<<24:
		return []byte{byte(v >> 16), byte(v >> 8), byte(v)}
	}
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// handlePack answers a Bootstrap-Pack-Request (GET /bspack?ep=.., LwM2M
// 1.2 Core 6.1.7.3, 8.2.5): the whole configuration in one SenML CBOR
// (or the Accept-ed SenML JSON / LwM2M CBOR) payload. The device applies
// it as one unit, so there is no session to time out.
func (b *Server) handlePack(w mux.ResponseWriter, r *mux.Message, _ []string) {
	sess, ep, _, cfg, ok := b.admit(w, r, "bootstrap-pack request")
	if !ok {
		return
	}
	f := lwm2m.FormatSenMLCBOR
	if a, err := r.Options().GetUint32(message.Accept); err == nil {
		switch lwm2m.ContentFormat(a) {
		case lwm2m.FormatSenMLCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatLwM2MCBOR:
			f = lwm2m.ContentFormat(a)
		default:
			diag(w, codes.NotAcceptable, "bootstrap-pack is served as senml+cbor, senml+json or lwm2m+cbor")
			return
		}
	}
	body, err := lwm2m.Encode(f, lwm2m.Root, Entries(cfg))
	if err != nil {
		b.log.Error("bootstrap-pack: encode", "endpoint", ep, "err", err)
		diag(w, codes.InternalServerError, "encode failed")
		return
	}
	b.log.Info("bootstrap-pack served", "endpoint", ep, "from", sess.RemoteAddr(), "format", f, "bytes", len(body))
	b.setStatus(Status{Endpoint: ep, State: Finished, Format: f.String(), Started: time.Now(), Ended: time.Now()})
	_ = w.SetResponse(codes.Content, message.MediaType(f), bytes.NewReader(body))
}
