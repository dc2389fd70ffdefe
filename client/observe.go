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
// client, that decides when to evaluate the observed value and when to
// notify (runObservation).
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
	pending bool      // notifications wait for the device to wake up
	history []reading // hqmax: notifications kept while they could not be sent
	reset   bool      // the server answered a notification with Reset
}

// reading is one read of the observed paths, encoded in the
// observation's format, and when it was taken.
type reading struct {
	at      time.Time
	entries []lwm2m.Entry
	body    []byte
}

// conRefresh is how long notifications may go non-confirmable (con=0):
// RFC 7641 4.5 wants a confirmable one at least every 24 hours, so that a
// server that went away is noticed. A variable for tests.
var conRefresh = 24 * time.Hour

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
	go c.runObservation(o, reading{at: time.Now(), entries: entries, body: body})
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

// boolValue returns the value of a single boolean entry, the only kind
// edge applies to.
func boolValue(entries []lwm2m.Entry) (bool, bool) {
	if len(entries) != 1 || entries[0].Value.Type() != lwm2m.TypeBoolean {
		return false, false
	}
	return entries[0].Value.Bool(), true
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

// obsState is what runObservation remembers between evaluations.
type obsState struct {
	lastSent time.Time // last notification (or the Observe answer)
	lastEval time.Time // last evaluation of the notification conditions
	lastCon  time.Time // last confirmable exchange (RFC 7641 4.5)
	lastBody []byte    // last notified representation
	lastVal  float64   // last notified value of a numeric resource
	lastBool bool      // last evaluated value of a boolean resource (edge)
}

// notified records r as what the server has (or will get from the queue).
func (st *obsState) notified(r reading) {
	st.lastBody = r.body
	if v, ok := numericValue(r.entries); ok {
		st.lastVal = v
	}
}

// conditionsMet evaluates the change conditions of LwM2M Core 5.1.2 on r:
// gt/lt/st against the last notified number; edge against the previous
// evaluated boolean (a transition is between two evaluations); otherwise
// any change of the representation.
func (st *obsState) conditionsMet(a Attributes, r reading) bool {
	if v, ok := numericValue(r.entries); ok {
		return crossed(a, st.lastVal, v)
	}
	if b, ok := boolValue(r.entries); ok {
		prev := st.lastBool
		st.lastBool = b
		if a.Edge != nil {
			return prev != b && b == (*a.Edge == 1)
		}
	}
	return !bytes.Equal(r.body, st.lastBody)
}

// observationAttributes returns the attributes that rule o. A composite
// observation takes the periods from the Server object's defaults only;
// it is confirmable unless every observed path has con=0 (LwM2M Core
// 5.1.2: confirmable if at least one component has con=1, and
// confirmable is our default).
func (c *Client) observationAttributes(o *observation) (pmin, pmax time.Duration, a Attributes) {
	if !o.composite {
		return c.effectiveAttributes(o.paths[0])
	}
	pmin, pmax, a = c.effectiveAttributes(lwm2m.Root)
	for _, p := range o.paths {
		if _, _, pa := c.effectiveAttributes(p); pa.Con == nil || *pa.Con != 0 {
			return pmin, pmax, a
		}
	}
	non := int64(0)
	a.Con = &non
	return pmin, pmax, a
}

// runObservation is the goroutine of one observation. The server's
// attributes drive two clocks (LwM2M Core 5.1.2):
//
//   - evaluation: a change the objects report (Changed) is evaluated (the
//     observed paths read and the change conditions checked) no sooner
//     than epmin after the previous evaluation, so it is deferred, never
//     lost; and at the latest epmax after the previous evaluation, change
//     reported or not, which catches values that change without telling.
//   - notification: one is owed once an evaluation meets the conditions;
//     it goes out no sooner than pmin after the previous one, with the
//     value current then; and one goes out every pmax regardless.
//
// Notifications are confirmable unless con=0. While the device cannot
// send (asleep in queue mode, or offline) a notification is kept: the
// latest one, or with hqmax=N the N latest with their times.
func (c *Client) runObservation(o *observation, first reading) {
	defer c.obsWG.Done()
	defer close(o.done)
	st := obsState{lastSent: first.at, lastEval: first.at, lastCon: first.at}
	st.notified(first)
	st.lastBool, _ = boolValue(first.entries)
	changed, owed := false, false
	for {
		pmin, pmax, attrs := c.observationAttributes(o)
		if pmax > 0 && pmax < pmin {
			pmax = 0 // LwM2M Core 5.1.2: pmax below pmin is ignored
		}
		epmin, epmax := seconds(attrs.Epmin), seconds(attrs.Epmax)
		if epmax > 0 && epmax <= epmin {
			epmax = 0 // the rule epmin < epmax, for inherited values
		}
		var due time.Time
		consider := func(t time.Time) {
			if due.IsZero() || t.Before(due) {
				due = t
			}
		}
		if changed {
			consider(st.lastEval.Add(epmin))
		}
		if owed {
			consider(st.lastSent.Add(pmin))
		}
		if pmax > 0 {
			consider(st.lastSent.Add(pmax))
		}
		if epmax > 0 {
			consider(st.lastEval.Add(epmax))
		}
		var timerC <-chan time.Time
		var timer *time.Timer
		if !due.IsZero() {
			timer = time.NewTimer(max(0, time.Until(due)))
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
		now := time.Now()
		periodic := pmax > 0 && !now.Before(st.lastSent.Add(pmax))
		evaluate := (changed && !now.Before(st.lastEval.Add(epmin))) ||
			(epmax > 0 && !now.Before(st.lastEval.Add(epmax)))
		var cur *reading
		if evaluate {
			r, ok, end := c.readObservation(o, now)
			if end {
				return
			}
			st.lastEval, changed = now, false
			if ok {
				o.mu.Lock()
				pending := o.pending
				o.mu.Unlock()
				if st.conditionsMet(attrs, r) || pending {
					owed = true
				}
				cur = &r
			}
		}
		if !periodic && !(owed && !now.Before(st.lastSent.Add(pmin))) {
			continue
		}
		if cur == nil {
			r, ok, end := c.readObservation(o, now)
			if end {
				return
			}
			if !ok {
				owed = false
				continue
			}
			cur = &r
		}
		// LwM2M Core 5.1.2 con, RFC 7641 4.5: non-confirmable when con=0,
		// but confirmable at least every conRefresh.
		con := attrs.Con == nil || *attrs.Con != 0 || now.Sub(st.lastCon) >= conRefresh
		o.mu.Lock()
		history := o.history
		o.mu.Unlock()
		if len(history) > 0 {
			// Notifications kept while asleep go first; the current value
			// is evaluated against them right after.
			if !c.sendHistory(o, history, con) {
				c.keep(o, attrs, *cur)
				st.notified(*cur)
				st.lastSent, owed = now, false
				continue
			}
			changed = true
		} else if !c.sendNotification(o, codes.Content, message.MediaType(o.format), cur.body, con) {
			c.keep(o, attrs, *cur)
			st.notified(*cur)
			st.lastSent, owed = now, false
			continue
		} else {
			st.notified(*cur)
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
		st.lastSent, owed = now, false
		if con {
			st.lastCon = now
		}
	}
}

// readObservation reads and encodes the observed paths. ok is false when
// that failed for now; end is true when the observed node is gone: the
// server got a 4.04 notification, which ends the observation (RFC 7641
// 4.2), and the goroutine must return.
func (c *Client) readObservation(o *observation, now time.Time) (r reading, ok, end bool) {
	entries, base, err := c.readPaths(o.paths, o.composite)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			c.sendNotification(o, codes.NotFound, message.TextPlain, nil, true)
			c.mu.Lock()
			delete(c.observers, string(o.token))
			c.mu.Unlock()
			return r, false, true
		}
		c.log.Warn("lwm2m notify: read", "path", o.paths[0], "err", err)
		return r, false, false
	}
	body, err := lwm2m.Encode(o.format, base, entries)
	if err != nil {
		c.log.Warn("lwm2m notify: encode", "path", o.paths[0], "err", err)
		return r, false, false
	}
	return reading{at: now, entries: entries, body: body}, true, false
}

// keep holds a notification the device could not send (asleep in queue
// mode, or offline) for the next wake-up (LwM2M Core 6.5: the device
// wakes to report). Without hqmax it keeps one, the latest, and asks for a
// wake-up at once. With hqmax=N (LwM2M 1.2, 5.1.2) it keeps the N latest
// readings with their times, dropping the oldest beyond N, and asks for a
// wake-up when the queue is full, so that none is dropped; hqmax=0 keeps
// none ("only the data ... with hqmax>0 will be included in notifications
// which were stored while disabled or offline"). hqmax takes effect only
// while the Server object's "Notification Storing When Disabled or
// Offline" is true.
func (c *Client) keep(o *observation, a Attributes, r reading) {
	wake := true
	o.mu.Lock()
	switch {
	case a.Hqmax != nil && *a.Hqmax == 0:
		wake = false
	case a.Hqmax != nil && c.notificationStoring():
		n := int(*a.Hqmax)
		o.history = append(o.history, r)
		if len(o.history) > n {
			o.history = append([]reading(nil), o.history[len(o.history)-n:]...)
		}
		o.pending = true
		wake = len(o.history) >= n
	default:
		o.pending = true
	}
	o.mu.Unlock()
	if wake && c.cfg.Queue {
		c.TriggerUpdate()
	}
}

// sendHistory sends the notifications kept under hqmax, oldest first,
// and empties the queue (LwM2M Core 5.1.2: "The LwM2M Client SHOULD empty
// the queue as soon it becomes aware that connectivity has been
// restored"). The Core TS says historical notifications "MAY be sent in a
// format as described in Section SenML JSON": one notification whose SenML
// pack holds every kept reading, each record with its time (7.4.4.2, the
// "multiple historical representations" example). So an observation in
// SenML JSON or SenML CBOR gets one such pack; the other formats carry no
// time, and get the kept notifications one by one, in order, each with
// its own Observe sequence number. false when the device could not send
// (the unsent ones stay queued).
func (c *Client) sendHistory(o *observation, history []reading, con bool) bool {
	drop := func(n int) {
		o.mu.Lock()
		o.history = append([]reading(nil), o.history[n:]...)
		o.mu.Unlock()
	}
	if o.format == lwm2m.FormatSenMLJSON || o.format == lwm2m.FormatSenMLCBOR {
		var timed []lwm2m.TimedEntry
		for _, h := range history {
			t := float64(h.at.UnixMilli()) / 1000
			for _, e := range h.entries {
				timed = append(timed, lwm2m.TimedEntry{Entry: e, Time: t})
			}
		}
		// Base / names each record by its full path (base name per object
		// instance): a resource base with one record per time would not
		// encode.
		body, err := lwm2m.EncodeTimed(o.format, lwm2m.Root, timed)
		if err != nil {
			c.log.Warn("lwm2m notify: encode history", "path", o.paths[0], "err", err)
			drop(len(history))
			return true
		}
		if !c.sendNotification(o, codes.Content, message.MediaType(o.format), body, con) {
			return false
		}
		drop(len(history))
		return true
	}
	for i, h := range history {
		if !c.sendNotification(o, codes.Content, message.MediaType(o.format), h.body, con) {
			drop(i)
			return false
		}
	}
	drop(len(history))
	return true
}

// sendNotification sends one notification over the current connection;
// false when there is none. A confirmable one waits for its ACK, so a
// server that went away is noticed; the send gives up when the
// observation is cancelled.
func (c *Client) sendNotification(o *observation, code codes.Code, cf message.MediaType, body []byte, confirmable bool) bool {
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
	if confirmable {
		m.SetType(message.Confirmable)
	} else {
		m.SetType(message.NonConfirmable)
	}
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
