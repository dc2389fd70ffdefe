package client

import (
	"bytes"
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// observation is one Observe or Observe-Composite the server holds on the
// device (LwM2M Core 5.5, RFC 7641). It has a goroutine, owned by the
// client, that decides when to notify: on change no sooner than pmin after
// the last notification and only when gt/lt/st say so, and in any case
// every pmax.
type observation struct {
	token     []byte
	paths     []lwm2m.Path
	composite bool
	format    lwm2m.ContentFormat

	poke chan struct{} // a value below paths changed, or attributes did
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	seq     uint32
	pending bool // a notification waits for the device to wake up
	reset   bool // the server answered a notification with Reset
}

// noteReset handles a Reset from the server. Its message ID cannot be
// matched to a notification: go-coap's blockwise layer re-numbers every
// message it sends. When exactly one notification awaits its ACK, the
// Reset is for that one (a Reset to anything else the device sends is not
// expected); with several in flight we cannot tell and keep them all.
func (c *Client) noteReset(mid int32) {
	c.mu.Lock()
	var o *observation
	if len(c.inflight) == 1 {
		for _, x := range c.inflight {
			o = x
		}
	}
	n := len(c.inflight)
	c.mu.Unlock()
	if o == nil {
		c.log.Debug("lwm2m reset not matched to a notification", "mid", mid, "in-flight", n)
		return
	}
	o.mu.Lock()
	o.reset = true
	o.mu.Unlock()
}

func (o *observation) nextSeq() uint32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq = (o.seq + 1) & 0xffffff // RFC 7641 4.4: 24-bit sequence numbers
	return o.seq
}

func (o *observation) touches(p lwm2m.Path) bool {
	for _, q := range o.paths {
		if q.Contains(p) || p.Contains(q) {
			return true
		}
	}
	return false
}

func (o *observation) signal() {
	select {
	case o.poke <- struct{}{}:
	default:
	}
}

// Changed tells the client that the value at p changed, so observations
// of p, of its ancestors and of its descendants consider a notification.
// SimpleObject calls it on every Set and Write; other Object
// implementations call it themselves.
func (c *Client) Changed(p lwm2m.Path) { c.pokeObservations(p) }

func (c *Client) pokeObservations(p lwm2m.Path) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.observers {
		if o.touches(p) {
			o.signal()
		}
	}
}

// flushObservations pokes the observations with notifications held back
// while the device slept.
func (c *Client) flushObservations() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.observers {
		o.mu.Lock()
		p := o.pending
		o.mu.Unlock()
		if p {
			o.signal()
		}
	}
}

// Observations returns the number of active observations.
func (c *Client) Observations() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.observers)
}

// serveObserve registers an observation and answers with the first
// notification (RFC 7641 3.1). Beyond MaxObservations the answer is a
// plain read without Observe option, which tells the server the
// observation was not established (RFC 7641 4.1).
func (c *Client) serveObserve(req *request, paths []lwm2m.Path, composite bool) {
	entries, base, err := c.readPaths(paths, composite)
	if err != nil {
		c.fail(req, err)
		return
	}
	cf, body, err := c.encode(req.r, base, entries, !composite)
	if err != nil {
		c.fail(req, err)
		return
	}
	token := append([]byte(nil), req.r.Token()...)
	o := &observation{
		token: token, paths: paths, composite: composite, format: cf,
		poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.cancelObservation(token) // a re-registration with the same token replaces
	c.mu.Lock()
	full := len(c.observers) >= c.cfg.MaxObservations
	if !full {
		c.observers[string(token)] = o
		c.obsWG.Add(1)
	}
	c.mu.Unlock()
	if full {
		c.log.Warn("lwm2m observe refused: too many observations", "path", paths[0])
		c.respond(req, codes.Content, message.MediaType(cf), body)
		return
	}
	c.respond(req, codes.Content, message.MediaType(cf), body)
	req.w.Message().SetObserve(o.nextSeq())
	last, _ := numericValue(entries)
	go c.runObservation(o, body, last)
}

// readPaths reads one path, or several for a composite operation.
func (c *Client) readPaths(paths []lwm2m.Path, composite bool) ([]lwm2m.Entry, lwm2m.Path, error) {
	if !composite {
		e, err := c.read(paths[0])
		return e, paths[0], err
	}
	e, err := c.readComposite(paths)
	return e, lwm2m.Root, err
}

// cancelObservation ends the observation with this token (Cancel
// Observation, LwM2M Core 5.5.2: GET with Observe=1) and waits for its
// goroutine.
func (c *Client) cancelObservation(token []byte) {
	c.mu.Lock()
	o, ok := c.observers[string(token)]
	delete(c.observers, string(token))
	c.mu.Unlock()
	if ok {
		close(o.stop)
		<-o.done
	}
}

// stopObservations ends all observations.
func (c *Client) stopObservations() {
	c.mu.Lock()
	all := c.observers
	c.observers = map[string]*observation{}
	c.mu.Unlock()
	for _, o := range all {
		close(o.stop)
	}
	c.obsWG.Wait()
}

// numericValue returns the value of a single numeric entry, the only kind
// gt, lt and st apply to.
func numericValue(entries []lwm2m.Entry) (float64, bool) {
	if len(entries) != 1 || !numeric(entries[0].Value.Type()) {
		return 0, false
	}
	return entries[0].Value.Float(), true
}

// crossed reports whether the move from last to v satisfies gt, lt or st
// (LwM2M Core 5.1.2); with none of them set, any change does.
func crossed(a Attributes, last, v float64) bool {
	if a.Gt == nil && a.Lt == nil && a.St == nil {
		return last != v
	}
	if a.Gt != nil && (last <= *a.Gt) != (v <= *a.Gt) {
		return true
	}
	if a.Lt != nil && (last < *a.Lt) != (v < *a.Lt) {
		return true
	}
	return a.St != nil && math.Abs(v-last) >= *a.St
}

// runObservation is the goroutine of one observation.
func (c *Client) runObservation(o *observation, lastBody []byte, lastVal float64) {
	defer c.obsWG.Done()
	defer close(o.done)
	lastSent := time.Now()
	changed := false
	for {
		attrPath := o.paths[0]
		if o.composite {
			attrPath = lwm2m.Root // only the Server object's defaults apply
		}
		pmin, pmax, attrs := c.effectiveAttributes(attrPath)
		if pmax > 0 && pmax < pmin {
			pmax = 0 // LwM2M Core 5.1.2: pmax below pmin is ignored
		}
		now := time.Now()
		wait := time.Duration(-1)
		if changed {
			wait = max(0, lastSent.Add(pmin).Sub(now))
		}
		if pmax > 0 {
			if d := max(0, lastSent.Add(pmax).Sub(now)); wait < 0 || d < wait {
				wait = d
			}
		}
		var timerC <-chan time.Time
		var timer *time.Timer
		if wait >= 0 {
			timer = time.NewTimer(wait)
			timerC = timer.C
		}
		select {
		case <-o.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-o.poke:
			if timer != nil {
				timer.Stop()
			}
			changed = true
			continue
		case <-timerC:
		}
		now = time.Now()
		periodic := pmax > 0 && !now.Before(lastSent.Add(pmax))
		if !periodic && !(changed && !now.Before(lastSent.Add(pmin))) {
			continue
		}
		entries, base, err := c.readPaths(o.paths, o.composite)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				// The observed node is gone: tell the server and end
				// (RFC 7641 4.2: an error notification ends the observation).
				c.sendNotification(o, codes.NotFound, message.TextPlain, nil)
				c.mu.Lock()
				delete(c.observers, string(o.token))
				c.mu.Unlock()
				return
			}
			c.log.Warn("lwm2m notify: read", "path", o.paths[0], "err", err)
			changed = false
			continue
		}
		body, err := lwm2m.Encode(o.format, base, entries)
		if err != nil {
			c.log.Warn("lwm2m notify: encode", "path", o.paths[0], "err", err)
			changed = false
			continue
		}
		o.mu.Lock()
		pending := o.pending
		o.mu.Unlock()
		if !periodic && !pending {
			v, isNum := numericValue(entries)
			if isNum && !crossed(attrs, lastVal, v) {
				changed = false
				continue
			}
			if !isNum && bytes.Equal(body, lastBody) {
				changed = false
				continue
			}
		}
		if !c.sendNotification(o, codes.Content, message.MediaType(o.format), body) {
			// Asleep (queue mode) or disconnected: keep it for the next
			// wake-up, and ask for one (LwM2M Core 6.5: the device wakes to
			// report).
			o.mu.Lock()
			o.pending = true
			o.mu.Unlock()
			if c.cfg.Queue {
				c.TriggerUpdate()
			}
			changed = false
			lastSent = now
			continue
		}
		o.mu.Lock()
		o.pending = false
		reset := o.reset
		o.mu.Unlock()
		if reset {
			// RFC 7641 3.6: Reset to a notification cancels the observation.
			c.log.Info("lwm2m observation reset by the server", "path", o.paths[0])
			c.mu.Lock()
			delete(c.observers, string(o.token))
			c.mu.Unlock()
			return
		}
		lastSent, lastBody, changed = now, body, false
		if v, ok := numericValue(entries); ok {
			lastVal = v
		}
	}
}

// sendNotification sends one notification over the current connection;
// false when there is none. Notifications are confirmable so that a
// server that went away is noticed; the send gives up when the
// observation is cancelled.
func (c *Client) sendNotification(o *observation, code codes.Code, cf message.MediaType, body []byte) bool {
	conn := c.currentConn()
	if conn == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(conn.Context(), c.cfg.RequestTimeout)
	defer cancel()
	go func() {
		select {
		case <-o.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	m := conn.AcquireMessage(ctx)
	defer conn.ReleaseMessage(m)
	c.mu.Lock()
	c.inflightSeq++
	key := c.inflightSeq
	c.inflight[key] = o
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.inflight, key)
		c.mu.Unlock()
	}()
	m.SetCode(code)
	m.SetToken(o.token)
	m.SetObserve(o.nextSeq())
	m.SetType(message.Confirmable)
	if body != nil {
		m.SetContentFormat(cf)
		m.SetBody(bytes.NewReader(body))
	}
	if err := conn.WriteMessage(m); err != nil {
		c.log.Debug("lwm2m notify: send", "path", o.paths[0], "err", err)
		return false
	}
	c.touch()
	return true
}
