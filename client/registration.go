package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// errForgotten is an Update answered with 4.04: the server no longer knows
// the registration, so the client registers again at once (LwM2M Core 6.2.2).
var errForgotten = errors.New("server does not know the registration (4.04)")

// RegisterError is a Register, Update or De-register answered with an
// error code.
type RegisterError struct {
	Op   string
	Code codes.Code
}

func (e *RegisterError) Error() string { return fmt.Sprintf("%s answered %v", e.Op, e.Code) }

// Run registers with the server and keeps the registration alive until ctx
// ends, then de-registers. It returns nil after a clean stop; failures to
// reach the server are retried with backoff, never returned.
func (c *Client) Run(ctx context.Context) error {
	c.runCtx = context.WithoutCancel(ctx) // connections are closed by us, after De-register
	defer c.stopObservations()
	backoff := c.cfg.MinBackoff
	for {
		registered, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if registered {
			backoff = c.cfg.MinBackoff
		}
		if errors.Is(err, errForgotten) || errors.Is(err, errReconnect) {
			continue
		}
		// Full jitter keeps a fleet that lost its server from coming back
		// in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		c.log.Info("lwm2m retry", "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// setConn swaps the current connection.
func (c *Client) setConn(conn *udpclient.Conn) {
	c.mu.Lock()
	c.conn = conn
	if conn != nil {
		c.lastSeen = time.Now()
	}
	c.mu.Unlock()
}

// currentConn returns the connection requests and notifications go over,
// nil while disconnected or asleep.
func (c *Client) currentConn() *udpclient.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// touch records traffic with the server (queue-mode sleep timer).
func (c *Client) touch() {
	c.mu.Lock()
	c.lastSeen = time.Now()
	c.mu.Unlock()
}

// session is one registration: connect, Register, Update until the
// lifetime ends or something fails, De-register when ctx ends.
func (c *Client) session(ctx context.Context) (registered bool, err error) {
	conn, err := c.dial(ctx, c.currentTarget(), c.handler(), nil)
	if err != nil {
		c.emit(Event{Kind: EventRegisterFailed, Err: err})
		return false, err
	}
	c.setConn(conn)
	closeConn := func() {
		c.setConn(nil)
		_ = conn.Close()
		<-conn.Done()
	}
	// LwM2M Core 6.2.1: a new registration cancels the observations the
	// server held for the old one; it observes again if it wants to.
	c.stopObservations()
	loc, err := c.register(ctx, conn)
	if err != nil {
		closeConn()
		c.emit(Event{Kind: EventRegisterFailed, Err: err})
		return false, err
	}
	c.emit(Event{Kind: EventRegistered, Location: loc})
	asleep := false
	local, _ := conn.LocalAddr().(*net.UDPAddr)
	for {
		c.mu.Lock()
		lt, last := c.lifetime, c.lastSeen
		c.mu.Unlock()
		// Update at 90% of the lifetime: enough margin for retransmissions
		// of the Update itself at short lifetimes, little extra traffic at
		// long ones.
		updT := time.NewTimer(lt * 9 / 10)
		var sleepC <-chan time.Time
		var sleepT *time.Timer
		var closed <-chan struct{}
		if !asleep {
			closed = conn.Done()
			if c.cfg.Queue {
				sleepT = time.NewTimer(time.Until(last.Add(c.cfg.QueueWait)))
				sleepC = sleepT.C
			}
		}
		stopTimers := func() {
			updT.Stop()
			if sleepT != nil {
				sleepT.Stop()
			}
		}
		select {
		case <-ctx.Done():
			stopTimers()
			c.deregister(conn, asleep)
			return true, ctx.Err()
		case <-sleepC:
			stopTimers()
			c.mu.Lock()
			idle := time.Since(c.lastSeen)
			c.mu.Unlock()
			if idle < c.cfg.QueueWait {
				continue // the server talked to us meanwhile
			}
			// LwM2M Core 6.5: in queue mode the device is not reachable
			// after the wait; we close the socket (the radio "sleeps").
			closeConn()
			asleep = true
			c.emit(Event{Kind: EventSleeping, Location: loc})
			continue
		case <-closed:
			stopTimers()
			if c.cfg.Queue {
				closeConn()
				asleep = true
				continue
			}
			// The session ended under us (the server closed it, or the
			// network failed): the registration may well live on, so
			// reconnect at once and Update rather than register anew.
			c.log.Info("lwm2m session closed; reconnecting", "location", loc)
			closeConn()
			asleep = true
		case <-c.reconnect:
			stopTimers()
			c.deregister(conn, asleep)
			return true, errReconnect
		case <-updT.C:
		case <-c.trigger:
		}
		stopTimers()
		if asleep {
			conn, err = c.dial(ctx, c.currentTarget(), c.handler(), local)
			if err != nil && local != nil {
				// Our old port is taken: any port will do, the Update
				// tells the server the new address.
				conn, err = c.dial(ctx, c.currentTarget(), c.handler(), nil)
			}
			if err != nil {
				c.emit(Event{Kind: EventUpdateFailed, Location: loc, Err: err})
				return true, err
			}
			c.setConn(conn)
			asleep = false
			if c.cfg.Queue {
				c.emit(Event{Kind: EventWakeup, Location: loc})
			}
		}
		if err := c.update(ctx, conn, loc); err != nil {
			if ctx.Err() != nil {
				// Stopped while the Update was in flight: still say goodbye.
				c.deregister(conn, false)
				return true, ctx.Err()
			}
			closeConn()
			var rerr *RegisterError
			if !errors.Is(err, errForgotten) && !errors.As(err, &rerr) {
				// No answer at all: the session may be gone (a server
				// restart loses DTLS sessions, not registrations). Try the
				// Update once more over a fresh session before registering
				// anew, so the server keeps our registration and its
				// observations.
				c.log.Info("lwm2m update: no answer, retrying over a new session", "err", err)
				conn, err = c.dial(ctx, c.currentTarget(), c.handler(), nil)
				if err == nil {
					c.setConn(conn)
					if err = c.update(ctx, conn, loc); err != nil {
						closeConn()
					} else {
						local, _ = conn.LocalAddr().(*net.UDPAddr)
					}
				}
			}
			if err != nil {
				c.emit(Event{Kind: EventUpdateFailed, Location: loc, Err: err})
				return true, err
			}
		}
		c.touch()
		c.emit(Event{Kind: EventUpdated, Location: loc})
		// Notifications held back while asleep go out now.
		c.flushObservations()
	}
}

// registerQuery is the query of a Register (LwM2M Core 6.2.1, 8.2.6).
func (c *Client) registerQuery() []string {
	c.mu.Lock()
	lt := c.lifetime
	c.mu.Unlock()
	q := []string{
		"ep=" + c.cfg.Endpoint,
		"lt=" + strconv.FormatInt(int64(lt/time.Second), 10),
		"lwm2m=" + LwM2MVersion,
		"b=" + c.binding(),
	}
	if c.cfg.Queue {
		q = append(q, "Q")
	}
	return q
}

func queryOpts(q []string) message.Options {
	opts := make(message.Options, 0, len(q))
	for _, s := range q {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(s)})
	}
	return opts
}

// register sends Register and keeps the location the server assigns.
func (c *Client) register(ctx context.Context, conn *udpclient.Conn) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	payload := c.RegistrationLinks()
	resp, err := conn.Post(rctx, "/rd", message.AppLinkFormat, bytes.NewReader([]byte(payload)), queryOpts(c.registerQuery())...)
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	defer conn.ReleaseMessage(resp)
	if resp.Code() != codes.Created {
		return "", &RegisterError{Op: "register", Code: resp.Code()}
	}
	loc, err := resp.Options().LocationPath()
	if err != nil || loc == "" || loc == "/" {
		return "", fmt.Errorf("register: answer has no Location-Path")
	}
	if !strings.HasPrefix(loc, "/") {
		loc = "/" + loc
	}
	c.mu.Lock()
	c.location = loc
	c.announced = payload
	c.announcedLt = c.lifetime
	c.mu.Unlock()
	return loc, nil
}

// update sends Update, with the lifetime and object list only when they
// changed since the last Register or Update (LwM2M Core 6.2.2).
func (c *Client) update(ctx context.Context, conn *udpclient.Conn, loc string) error {
	c.mu.Lock()
	lt, announced, announcedLt := c.lifetime, c.announced, c.announcedLt
	c.mu.Unlock()
	var q []string
	if lt != announcedLt {
		q = append(q, "lt="+strconv.FormatInt(int64(lt/time.Second), 10))
	}
	links := c.RegistrationLinks()
	var body *bytes.Reader
	if links != announced {
		body = bytes.NewReader([]byte(links))
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := conn.NewPostRequest(rctx, loc, message.AppLinkFormat, nil, queryOpts(q)...)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if body != nil {
		req.SetBody(body)
	} else {
		req.SetBody(nil)
		req.Remove(message.ContentFormat)
	}
	resp, err := conn.Do(req)
	conn.ReleaseMessage(req)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	defer conn.ReleaseMessage(resp)
	switch resp.Code() {
	case codes.Changed:
		c.mu.Lock()
		c.announced, c.announcedLt = links, lt
		c.mu.Unlock()
		return nil
	case codes.NotFound:
		return errForgotten
	}
	return &RegisterError{Op: "update", Code: resp.Code()}
}

// deregister sends De-register over conn (waking up first when asleep),
// then closes the connection. It runs after ctx ended, so it has a short
// deadline of its own.
func (c *Client) deregister(conn *udpclient.Conn, asleep bool) {
	loc := c.Location()
	if c.rebooting.Load() {
		// Power cycle (Reboot): the device just goes away.
		c.stopObservations()
		c.setConn(nil)
		c.mu.Lock()
		c.location = ""
		c.mu.Unlock()
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(c.cfg.RequestTimeout, 5*time.Second))
	defer cancel()
	if asleep {
		var err error
		conn, err = c.dial(ctx, c.currentTarget(), c.handler(), nil)
		if err != nil {
			c.log.Warn("lwm2m deregister: cannot reach server", "err", err)
			return
		}
	}
	c.stopObservations()
	resp, err := conn.Delete(ctx, loc)
	c.setConn(nil)
	c.mu.Lock()
	c.location = ""
	c.mu.Unlock()
	switch {
	case err != nil:
		c.emit(Event{Kind: EventDeregistered, Location: loc, Err: fmt.Errorf("de-register: %w", err)})
	case resp.Code() != codes.Deleted:
		c.emit(Event{Kind: EventDeregistered, Location: loc, Err: &RegisterError{Op: "de-register", Code: resp.Code()}})
	default:
		c.emit(Event{Kind: EventDeregistered, Location: loc})
	}
	if resp != nil {
		conn.ReleaseMessage(resp)
	}
	_ = conn.Close()
	<-conn.Done()
}

// RegistrationLinks is the Register payload: the objects and instances in
// CoRE link format (LwM2M Core 6.2.1, 7.2), "</>;rt="oma.lwm2m";ct=..."
// first, ver= on objects whose version is not 1.0. The Security object is
// not listed (LwM2M Core 6.2.1: it MUST NOT be part of the list).
func (c *Client) RegistrationLinks() string {
	var b strings.Builder
	// ct: the formats we answer multi-value reads with; SenML CBOR is the
	// LwM2M 1.1 preferred one.
	b.WriteString(`</>;rt="oma.lwm2m";ct=` + strconv.Itoa(int(lwm2m.FormatSenMLCBOR)))
	for _, o := range c.objectList() {
		if o.ID() == 0 || o.ID() == 21 {
			continue
		}
		b.WriteString(",</" + strconv.Itoa(int(o.ID())) + ">")
		if v := o.Version(); v != "" && v != "1.0" {
			b.WriteString(";ver=" + v)
		}
		for _, i := range o.Instances() {
			b.WriteString(",</" + strconv.Itoa(int(o.ID())) + "/" + strconv.Itoa(int(i)) + ">")
		}
	}
	return b.String()
}
