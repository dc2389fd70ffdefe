package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"

	"github.com/fotastack/fota/lwm2m"
)

// BootstrapConfig is the factory bootstrap configuration: the bootstrap
// server's URI and the credentials the device was manufactured with,
// nothing else (LwM2M Core 6.1.3, client-initiated bootstrap).
type BootstrapConfig struct {
	URI         string
	PSKIdentity string
	PSKKey      []byte
	// Timeout bounds one bootstrap from Bootstrap-Request to
	// Bootstrap-Finish (default 60 s); past it the writes received are
	// thrown away.
	Timeout time.Duration
	// MaxRegisterFailures is how many registration attempts in a row may
	// fail before the device bootstraps again (default 3).
	MaxRegisterFailures int
	// PreferredFormat is sent as pct= (default SenML CBOR).
	PreferredFormat lwm2m.ContentFormat
	// Pack asks for the whole configuration in one Bootstrap-Pack
	// (GET /bspack, LwM2M 1.2 Core 6.1.7.3) instead of the session of
	// Bootstrap-Request, writes and Finish.
	Pack bool
	// OnBootstrap, when set, is called after each bootstrap attempt.
	OnBootstrap func(err error)
	// Setup, when set, is called with each DM client RunWithBootstrap
	// makes (a new one after every bootstrap), after New and before
	// Start: it is where the caller adds its objects, such as the
	// Firmware Update object (client/firmware.Attach). ctx ends when that
	// client's run ends. An error ends RunWithBootstrap with it.
	Setup func(ctx context.Context, c *Client) error
}

// finishLinger is how long the device keeps the bootstrap session open
// after answering Bootstrap-Finish.
const finishLinger = 100 * time.Millisecond

// ErrBootstrapFailed wraps every reason a bootstrap did not end in a
// committed configuration.
var ErrBootstrapFailed = errors.New("bootstrap failed")

func (bc *BootstrapConfig) defaults() {
	if bc.Timeout == 0 {
		bc.Timeout = 60 * time.Second
	}
	if bc.MaxRegisterFailures == 0 {
		bc.MaxRegisterFailures = 3
	}
	if bc.PreferredFormat == 0 {
		bc.PreferredFormat = lwm2m.FormatSenMLCBOR
	}
}

// Bootstrap runs one client-initiated bootstrap (LwM2M Core 6.1.5):
// Bootstrap-Request, then the server's Delete/Discover/Read/Write
// operations on a copy of current, then Bootstrap-Finish. Only a Finish
// whose configuration passes Accounts.Check is committed: it is saved to
// cfg.StateDir (when set) before Finish is answered 2.04, and returned.
// Anything else (a timeout, a refused Finish, a failed save) leaves
// current and the state directory as they were.
func Bootstrap(ctx context.Context, cfg Config, bc BootstrapConfig, current *Accounts) (*Accounts, error) {
	bc.defaults()
	if current == nil {
		current = NewFactoryAccounts(bc)
	}
	bcfg := cfg
	bcfg.ServerURI, bcfg.PSKIdentity, bcfg.PSKKey = bc.URI, bc.PSKIdentity, bc.PSKKey
	bcfg.OnEvent = nil
	helper, err := New(bcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBootstrapFailed, err)
	}
	ctx, cancel := context.WithTimeout(ctx, bc.Timeout)
	defer cancel()
	if bc.Pack {
		return bootstrapPack(ctx, helper, cfg, current)
	}
	s := &bsSession{c: helper, staged: current.Clone(), stateDir: cfg.StateDir, done: make(chan error, 1)}
	conn, err := helper.dial(ctx, helper.target, mux.HandlerFunc(s.serve), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBootstrapFailed, err)
	}
	defer func() {
		// Closing at once could make the server lose our answer to
		// Finish: its DTLS side may see our close_notify before its CoAP
		// side has matched the answer. Give it a moment (or until it ends
		// the session itself).
		s.mu.Lock()
		linger := s.answered
		s.mu.Unlock()
		if linger {
			t := time.NewTimer(finishLinger)
			select {
			case <-conn.Done():
			case <-t.C:
			}
			t.Stop()
		}
		_ = conn.Close()
		<-conn.Done()
	}()
	q := []string{"ep=" + cfg.Endpoint, "pct=" + strconv.Itoa(int(bc.PreferredFormat))}
	rctx, rcancel := context.WithTimeout(ctx, helper.cfg.RequestTimeout)
	req, err := conn.NewPostRequest(rctx, "/bs", message.TextPlain, nil, queryOpts(q)...)
	if err != nil {
		rcancel()
		return nil, fmt.Errorf("%w: bootstrap-request: %v", ErrBootstrapFailed, err)
	}
	req.SetBody(nil)
	req.Remove(message.ContentFormat)
	resp, err := conn.Do(req)
	conn.ReleaseMessage(req)
	rcancel()
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap-request: %v", ErrBootstrapFailed, err)
	}
	code := resp.Code()
	detail := diagnostic(resp.Body())
	conn.ReleaseMessage(resp)
	if code != codes.Changed {
		return nil, fmt.Errorf("%w: bootstrap-request answered %v%s", ErrBootstrapFailed, code, detail)
	}
	select {
	case <-ctx.Done():
		s.abandon()
		return nil, fmt.Errorf("%w: no Bootstrap-Finish within %v: %v", ErrBootstrapFailed, bc.Timeout, ctx.Err())
	case err := <-s.done:
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBootstrapFailed, err)
		}
	}
	return s.committed, nil
}

// bootstrapPack fetches the configuration as one Bootstrap-Pack and
// applies it as one unit: the pack replaces every Security (but the
// bootstrap account), Server and Access Control instance; it is checked
// as Bootstrap-Finish would check it and saved before it is returned.
func bootstrapPack(ctx context.Context, helper *Client, cfg Config, current *Accounts) (*Accounts, error) {
	conn, err := helper.dial(ctx, helper.target, mux.HandlerFunc(func(mux.ResponseWriter, *mux.Message) {}), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBootstrapFailed, err)
	}
	defer func() {
		_ = conn.Close()
		<-conn.Done()
	}()
	rctx, cancel := context.WithTimeout(ctx, helper.cfg.RequestTimeout)
	defer cancel()
	resp, err := conn.Get(rctx, "/bspack", append(queryOpts([]string{"ep=" + cfg.Endpoint}),
		message.Option{ID: message.Accept, Value: []byte{byte(lwm2m.FormatSenMLCBOR)}})...)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap-pack-request: %v", ErrBootstrapFailed, err)
	}
	defer conn.ReleaseMessage(resp)
	if resp.Code() != codes.Content {
		return nil, fmt.Errorf("%w: bootstrap-pack-request answered %v%s", ErrBootstrapFailed, resp.Code(), diagnostic(resp.Body()))
	}
	cf, err := resp.ContentFormat()
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap-pack without content format", ErrBootstrapFailed)
	}
	var body []byte
	if b := resp.Body(); b != nil {
		if body, err = io.ReadAll(io.LimitReader(b, maxBody+1)); err != nil || len(body) > maxBody {
			return nil, fmt.Errorf("%w: bootstrap-pack unreadable or too large", ErrBootstrapFailed)
		}
	}
	entries, err := lwm2m.Decode(lwm2m.ContentFormat(cf), lwm2m.Root, body, bootstrapResolver{})
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap-pack: %v", ErrBootstrapFailed, err)
	}
	next := current.Clone()
	if err := next.delete(lwm2m.Root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBootstrapFailed, err)
	}
	if err := next.write(entries); err != nil {
		return nil, fmt.Errorf("%w: bootstrap-pack: %v", ErrBootstrapFailed, err)
	}
	if _, err := next.Check(); err != nil {
		return nil, fmt.Errorf("%w: bootstrap-pack: %v", ErrBootstrapFailed, err)
	}
	if cfg.StateDir != "" {
		if err := SaveAccounts(cfg.StateDir, next); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBootstrapFailed, err)
		}
	}
	return next, nil
}

func diagnostic(body io.Reader) string {
	if body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(body, 256))
	if len(b) == 0 {
		return ""
	}
	return ": " + strconv.Quote(string(b))
}

// bsSession is the device side of one bootstrap: the server's requests
// work on staged; Finish commits it.
type bsSession struct {
	c        *Client // for logging and formats only
	stateDir string

	mu        sync.Mutex
	staged    *Accounts
	over      bool
	answered  bool // a Finish was answered
	committed *Accounts
	done      chan error // one value: the outcome
}

func (s *bsSession) finish(err error) {
	select {
	case s.done <- err:
	default:
	}
}

// abandon ends the session: later requests are refused, nothing is kept.
func (s *bsSession) abandon() {
	s.mu.Lock()
	s.over = true
	s.mu.Unlock()
}

func (s *bsSession) reply(w mux.ResponseWriter, code codes.Code, cf message.MediaType, body []byte) {
	var rd io.ReadSeeker
	if body != nil {
		rd = bytes.NewReader(body)
	}
	_ = w.SetResponse(code, cf, rd)
}

func (s *bsSession) fail(w mux.ResponseWriter, r *mux.Message, err error) {
	code := lwm2m.CodeOf(err)
	s.c.log.Warn("bootstrap: request refused", "method", r.Code(), "code", code, "err", err)
	s.reply(w, code, message.TextPlain, []byte(err.Error()))
}

// serve answers the bootstrap server's requests (LwM2M Core 5.2.7):
// Bootstrap-Finish (POST /bs), Bootstrap-Delete (DELETE), Bootstrap-Write
// (PUT), Bootstrap-Discover (GET with Accept: link-format) and
// Bootstrap-Read (GET of objects 1 and 2).
func (s *bsSession) serve(w mux.ResponseWriter, r *mux.Message) {
	switch r.Code() {
	case codes.GET, codes.PUT, codes.POST, codes.DELETE:
	default:
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over {
		s.reply(w, codes.ServiceUnavailable, message.TextPlain, []byte("bootstrap session is over"))
		return
	}
	ps, err := r.Options().Path()
	if err != nil && !errors.Is(err, message.ErrOptionNotFound) {
		s.fail(w, r, fmt.Errorf("request path: %w", ErrBadRequest))
		return
	}
	if r.Code() == codes.POST && strings.Trim(ps, "/") == "bs" {
		s.serveFinish(w, r)
		return
	}
	p, err := lwm2m.ParsePath(ps)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%v: %w", err, ErrNotFound))
		return
	}
	switch r.Code() {
	case codes.DELETE:
		if err := s.staged.delete(p); err != nil {
			s.fail(w, r, err)
			return
		}
		s.reply(w, codes.Deleted, 0, nil)
	case codes.PUT:
		s.serveWrite(w, r, p)
	case codes.GET:
		if a, ok := accept(r); ok && a == lwm2m.FormatLinkFormat {
			s.serveDiscover(w, p)
			return
		}
		s.serveRead(w, r, p)
	default:
		s.fail(w, r, fmt.Errorf("%v %v during bootstrap: %w", r.Code(), p, ErrNotAllowed))
	}
}

func (s *bsSession) serveWrite(w mux.ResponseWriter, r *mux.Message, p lwm2m.Path) {
	if p.Len() == 0 {
		s.fail(w, r, fmt.Errorf("bootstrap-write needs an object path: %w", ErrBadRequest))
		return
	}
	cf, err := contentFormat(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body []byte
	if b := r.Body(); b != nil {
		if body, err = io.ReadAll(io.LimitReader(b, maxBody+1)); err != nil || len(body) > maxBody {
			s.fail(w, r, fmt.Errorf("payload unreadable or too large: %w", ErrBadRequest))
			return
		}
	}
	entries, err := lwm2m.Decode(cf, p, body, bootstrapResolver{})
	if err != nil {
		if errors.Is(err, lwm2m.ErrUnsupportedFormat) {
			s.fail(w, r, fmt.Errorf("%v: %w", err, ErrUnsupportedFormat))
			return
		}
		s.fail(w, r, fmt.Errorf("bootstrap-write %v: %v: %w", p, err, ErrBadRequest))
		return
	}
	// All or nothing: a write the device cannot keep leaves staged as it was.
	trial := s.staged.Clone()
	if err := trial.write(entries); err != nil {
		s.fail(w, r, err)
		return
	}
	s.staged = trial
	s.c.log.Debug("bootstrap-write", "path", p, "values", len(entries))
	s.reply(w, codes.Changed, 0, nil)
}

// serveDiscover lists the provisioned objects' instances (LwM2M Core
// 5.2.7.1): ssid and uri on Security and Server instances, and the other
// objects the device implements.
func (s *bsSession) serveDiscover(w mux.ResponseWriter, p lwm2m.Path) {
	var b strings.Builder
	b.WriteString(`lwm2m="` + LwM2MVersion + `"`)
	objs := []uint16{0, 1, 2}
	for _, o := range s.c.objectList() {
		if o.ID() > 2 {
			objs = append(objs, o.ID())
		}
	}
	for _, o := range objs {
		if p.Len() > 0 && p.Object() != o {
			continue
		}
		var insts []uint16
		if o <= 2 {
			insts = s.staged.Instances(o)
		} else {
			insts = s.c.Object(o).Instances()
		}
		if len(insts) == 0 {
			b.WriteString(",</" + strconv.Itoa(int(o)) + ">")
			continue
		}
		for _, i := range insts {
			b.WriteString(",</" + strconv.Itoa(int(o)) + "/" + strconv.Itoa(int(i)) + ">")
			switch o {
			case 0:
				if v, ok := s.staged.Get(lwm2m.ResourcePath(0, i, SecShortServerID)); ok && !s.staged.isBootstrapInstance(i) {
					b.WriteString(";ssid=" + strconv.FormatInt(v.Int(), 10))
				}
				if v, ok := s.staged.Get(lwm2m.ResourcePath(0, i, SecServerURI)); ok {
					b.WriteString(`;uri="` + v.Str() + `"`)
				}
			case 1:
				if v, ok := s.staged.Get(lwm2m.ResourcePath(1, i, SrvShortServerID)); ok {
					b.WriteString(";ssid=" + strconv.FormatInt(v.Int(), 10))
				}
			}
		}
	}
	s.reply(w, codes.Content, message.AppLinkFormat, []byte(b.String()))
}

// serveRead is Bootstrap-Read (LwM2M Core 5.2.7.2): Server and Access
// Control objects only; the Security object is never read back.
func (s *bsSession) serveRead(w mux.ResponseWriter, r *mux.Message, p lwm2m.Path) {
	if p.Len() == 0 || (p.Object() != 1 && p.Object() != 2) {
		s.fail(w, r, fmt.Errorf("bootstrap-read %v: only objects 1 and 2 can be read: %w", p, ErrUnauthorized))
		return
	}
	entries := s.staged.Entries(p)
	if len(entries) == 0 && p.Len() >= 2 {
		s.fail(w, r, notFound(p))
		return
	}
	cf := lwm2m.FormatSenMLCBOR
	if a, ok := accept(r); ok {
		cf = a
	}
	body, err := lwm2m.Encode(cf, p, entries)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%v: %w", err, ErrNotAcceptable))
		return
	}
	s.reply(w, codes.Content, message.MediaType(cf), body)
}

// serveFinish is Bootstrap-Finish (LwM2M Core 5.2.7.6): check, save,
// answer. The answer goes out only after the save returned, so a device
// that says 2.04 has the configuration on its "flash".
func (s *bsSession) serveFinish(w mux.ResponseWriter, r *mux.Message) {
	// The outcome is reported once the answer is on the wire: Bootstrap
	// closes the connection then, which must not swallow the answer.
	s.answered = true
	report := func(err error) {
		if !responsewriter.AfterWrite(r.Context(), func() { s.finish(err) }) {
			s.finish(err)
		}
	}
	if _, err := s.staged.Check(); err != nil {
		s.c.log.Warn("bootstrap-finish refused", "err", err)
		s.reply(w, codes.NotAcceptable, message.TextPlain, []byte(err.Error()))
		s.over = true
		report(err)
		return
	}
	if s.stateDir != "" {
		if err := SaveAccounts(s.stateDir, s.staged); err != nil {
			s.c.log.Warn("bootstrap-finish: cannot store configuration", "err", err)
			s.reply(w, codes.InternalServerError, message.TextPlain, []byte("cannot store configuration: "+err.Error()))
			s.over = true
			report(err)
			return
		}
	}
	s.committed = s.staged.Clone()
	s.over = true
	s.reply(w, codes.Changed, 0, nil)
	report(nil)
}

// RunWithBootstrap runs a device that starts with its factory bootstrap
// account only. It registers with the DM account kept in cfg.StateDir, if
// any; otherwise, or after bc.MaxRegisterFailures failed registrations in
// a row, or when the server executes the Bootstrap-Request Trigger
// (/1/x/9), it bootstraps first. cfg.ServerURI and the PSK fields are
// taken from the provisioned account. It returns when ctx ends.
func RunWithBootstrap(ctx context.Context, cfg Config, bc BootstrapConfig) error {
	bc.defaults()
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("endpoint", cfg.Endpoint)
	accounts, err := LoadAccounts(cfg.StateDir)
	if cfg.StateDir == "" {
		accounts, err = nil, nil
	}
	if err != nil {
		// A state file we cannot read is as good as none: bootstrap.
		log.Warn("bootstrap: stored accounts unreadable, bootstrapping anew", "err", err)
		accounts = nil
	}
	needBootstrap := accounts == nil
	if accounts != nil {
		if _, err := accounts.Check(); err != nil {
			needBootstrap = true
		}
	}
	backoff := time.Second
	for ctx.Err() == nil {
		if needBootstrap {
			log.Info("bootstrap: requesting", "server", bc.URI)
			got, err := Bootstrap(ctx, cfg, bc, accounts)
			if bc.OnBootstrap != nil {
				bc.OnBootstrap(err)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				wait := backoff/2 + rand.N(backoff/2+1)
				log.Warn("bootstrap: failed, retrying", "in", wait, "err", err)
				if !sleepCtx(ctx, wait) {
					return nil
				}
				backoff = min(backoff*2, 5*time.Minute)
				if accounts != nil {
					// Try the account we still have in between.
					needBootstrap = false
				}
				continue
			}
			backoff = time.Second
			accounts = got
			log.Info("bootstrap: finished")
		}
		needBootstrap = true
		if err := runDM(ctx, cfg, bc, accounts, log); err != nil {
			if se := (*setupError)(nil); errors.As(err, &se) {
				return se.err
			}
			log.Warn("bootstrap: DM account unusable", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
		}
	}
	return nil
}

// runDM runs the client on the provisioned DM account until ctx ends
// (nil), registration keeps failing, or the server asks for a bootstrap.
func runDM(ctx context.Context, cfg Config, bc BootstrapConfig, accounts *Accounts, log *slog.Logger) error {
	acc, err := accounts.Check()
	if err != nil {
		return err
	}
	dm := cfg
	dm.ServerURI, dm.PSKIdentity, dm.PSKKey = acc.URI, acc.PSKIdentity, acc.PSKKey
	if acc.Mode == SecurityModeCertificate {
		key, _ := x509.ParsePKCS8PrivateKey(acc.Key) // Check parsed it
		dm.Certificate = &tls.Certificate{Certificate: [][]byte{acc.Certificate}, PrivateKey: key}
		srvCert, _ := x509.ParseCertificate(acc.ServerCert)
		dm.RootCAs = x509.NewCertPool()
		dm.RootCAs.AddCert(srvCert)
		if u, err := url.Parse(acc.URI); err == nil {
			dm.ServerName = u.Hostname()
		}
	}
	dm.Lifetime = time.Duration(acc.Lifetime) * time.Second
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failures := 0
	var mu sync.Mutex
	dm.OnEvent = func(e Event) {
		mu.Lock()
		switch e.Kind {
		case EventRegistered:
			failures = 0
		case EventRegisterFailed:
			failures++
			if failures >= bc.MaxRegisterFailures {
				log.Info("bootstrap: registration keeps failing, bootstrapping again", "failures", failures)
				cancel()
			}
		}
		mu.Unlock()
		if cfg.OnEvent != nil {
			cfg.OnEvent(e)
		}
	}
	c, err := New(dm)
	if err != nil {
		return err
	}
	installAccounts(c, accounts, acc)
	if srv := c.SimpleObject(1); srv != nil {
		srv.OnExecute(SrvBootstrapTrigger, func(uint16, string) error {
			// LwM2M Core E.2: execute of resource 9 makes the client
			// initiate a Bootstrap-Request. The 2.04 goes out first; the
			// run ends (with De-register) just after.
			log.Info("bootstrap: requested by the server (/1/x/9)")
			time.AfterFunc(50*time.Millisecond, cancel)
			return nil
		})
	}
	if bc.Setup != nil {
		if err := bc.Setup(rctx, c); err != nil {
			return &setupError{fmt.Errorf("bootstrap: setting up the DM client: %w", err)}
		}
	}
	// Start, not Run: what Setup attached may restart the client (a
	// firmware update's reboot does Stop and Start). Stop de-registers
	// and waits for the client's goroutines, as Run's return would.
	if err := c.Start(rctx); err != nil {
		return err
	}
	<-rctx.Done()
	c.Stop()
	return nil
}

// setupError is BootstrapConfig.Setup's failure: it ends RunWithBootstrap
// instead of sending the device back to bootstrap.
type setupError struct{ err error }

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// installAccounts makes the client's Security and Server objects show the
// provisioned instances instead of the single account New made up.
func installAccounts(c *Client, a *Accounts, acc DMAccount) {
	sec := NewSecurityObject()
	for _, i := range a.Instances(0) {
		vals := map[uint16]lwm2m.Value{}
		for _, e := range a.Entries(lwm2m.InstancePath(0, i)) {
			if e.Path.Len() == 3 {
				if _, ok := sec.Def(e.Path.Resource()); ok {
					vals[e.Path.Resource()] = e.Value
				}
			}
		}
		sec.AddInstance(i, vals)
	}
	c.SetObject(sec)
	if acl := a.Instances(2); len(acl) > 0 {
		// Access Control (LwM2M Core E.3): shown to the DM server as
		// provisioned; the client core does not enforce it.
		o := newAccessControlObject()
		for _, i := range acl {
			single := map[uint16]lwm2m.Value{}
			multi := map[uint16]lwm2m.Value{}
			for _, e := range a.Entries(lwm2m.InstancePath(2, i)) {
				if e.Path.Len() == 4 {
					multi[e.Path.ResourceInstance()] = e.Value
				} else {
					single[e.Path.Resource()] = e.Value
				}
			}
			o.AddInstance(i, single)
			if len(multi) > 0 {
				_ = o.SetMultiple(lwm2m.ResourcePath(2, i, acACL), multi)
			}
		}
		c.SetObject(o)
	}
	srv := c.SimpleObject(1)
	if srv == nil {
		return
	}
	for _, i := range srv.Instances() {
		srv.RemoveInstance(i)
	}
	for _, i := range a.Instances(1) {
		vals := map[uint16]lwm2m.Value{}
		for _, e := range a.Entries(lwm2m.InstancePath(1, i)) {
			if e.Path.Len() == 3 {
				if _, ok := srv.Def(e.Path.Resource()); ok {
					vals[e.Path.Resource()] = e.Value
				}
			}
		}
		srv.AddInstance(i, vals)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
