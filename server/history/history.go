// Package history keeps each device's history: it follows the server's
// events (registrations, campaign steps, Firmware Update notifications) and
// writes what changed to the store, bounded per device. It is a reader of
// the event bus like the API's event stream, so the parts that publish
// (dm, campaign) know nothing of it.
package history

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/store"
)

// Keep is how many entries a device's history holds; older ones are dropped.
const Keep = 200

// Bounds of the writer: entries are written in batches (one transaction
// for many devices), at least every flushEvery.
const (
	bufferEvents = 4096
	flushBatch   = 256
	flushEvery   = 250 * time.Millisecond
)

// Recorder writes device histories from events. Under an event storm the
// broker drops what the recorder cannot take (a bounded buffer), so history
// never slows devices down; the drops are logged.
type Recorder struct {
	st  store.HistoryStore
	log *slog.Logger

	mu   sync.Mutex
	last map[string]string // endpoint + "\x00" + what -> last value recorded: no repeats

	stop chan struct{}
	done chan struct{}
}

// Start subscribes to b and records until Close.
func Start(b *events.Broker, st store.HistoryStore, log *slog.Logger) *Recorder {
	r := &Recorder{st: st, log: log, last: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	ch, cancel := b.Subscribe(bufferEvents)
	go func() {
		defer close(r.done)
		defer cancel()
		r.run(ch)
	}()
	return r
}

// Close stops the recorder after writing what it holds.
func (r *Recorder) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

func (r *Recorder) run(ch <-chan events.Event) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	var pending []store.HistoryEntry
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if err := r.st.AddHistory(pending, Keep); err != nil {
			r.log.Error("device history not stored", "entries", len(pending), "err", err)
		}
		pending = pending[:0]
	}
	for {
		select {
		case <-r.stop:
			// What is already buffered is written, then the loop ends.
			for {
				select {
				case e, ok := <-ch:
					if !ok {
						flush()
						return
					}
					pending = append(pending, r.entries(e)...)
				default:
					flush()
					return
				}
			}
		case <-t.C:
			flush()
		case e, ok := <-ch:
			if !ok {
				flush()
				return
			}
			pending = append(pending, r.entries(e)...)
			if len(pending) >= flushBatch {
				flush()
			}
		}
	}
}

// changed reports whether what of ep differs from the last value recorded,
// and remembers v.
func (r *Recorder) changed(ep, what, v string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := ep + "\x00" + what
	if r.last[k] == v {
		return false
	}
	r.last[k] = v
	return true
}

func (r *Recorder) forget(ep string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, what := range []string{"/3/0/3", "/5/0/3", "/5/0/5"} {
		delete(r.last, ep+"\x00"+what)
	}
}

// entries turns an event into history entries (none for what is not
// history: registration updates, other notifications, campaign progress).
func (r *Recorder) entries(e events.Event) []store.HistoryEntry {
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	h := store.HistoryEntry{Time: at.UTC(), Endpoint: e.Endpoint}
	data, _ := e.Data.(map[string]any)
	switch e.Type {
	case events.Registration:
		r.forget(e.Endpoint)
		h.Kind = "registered"
		h.Detail = fmt.Sprintf("registered: LwM2M %v, binding %v, %v/%v from %v", data["lwM2mVersion"], data["bindingMode"],
			data["transport"], data["security"], data["address"])
		return []store.HistoryEntry{h}
	case events.Deregistration:
		r.forget(e.Endpoint)
		h.Kind, h.Detail = "deregistered", "de-registered"
		if exp, _ := data["expired"].(bool); exp {
			h.Kind, h.Detail = "expired", "registration expired (no update within its lifetime)"
		}
		return []store.HistoryEntry{h}
	case events.Campaign:
		d, ok := data["device"].(store.CampaignDevice)
		if !ok {
			return nil
		}
		id, _ := data["campaign"].(string)
		if !r.changed(e.Endpoint, "campaign "+id, d.State+"\x00"+d.Error) {
			return nil // progress within a state
		}
		if d.State == "succeeded" || d.State == "skipped" || d.State == "cancelled" ||
			(d.State == "failed" && d.RetryAt.IsZero()) {
			// The device is done in this campaign: its last state need not
			// be remembered, so the map stays bounded by devices updating.
			r.mu.Lock()
			delete(r.last, e.Endpoint+"\x00campaign "+id)
			r.mu.Unlock()
		}
		h.Kind, h.Campaign, h.State, h.Result, h.Version = "campaign", id, d.State, d.Result, d.FromVersion
		h.Detail = fmt.Sprintf("campaign %s: %s", id, d.State)
		if d.PackageKind != "" && d.State == "downloading" {
			h.Detail += fmt.Sprintf(" (%s package, %d bytes)", d.PackageKind, d.PackageSize)
		}
		if d.Error != "" {
			h.Detail += ": " + d.Error
		}
		return []store.HistoryEntry{h}
	case events.Notification:
		return r.firmware(h, data)
	}
	return nil
}

// Firmware Update object (/5) states, LwM2M Core E.6.
var fwStates = map[int64]string{0: "Idle", 1: "Downloading", 2: "Downloaded", 3: "Updating"}

// firmware records changes of /3/0/3 (the running version), /5/0/3 (state)
// and /5/0/5 (update result) seen in a notification.
func (r *Recorder) firmware(h store.HistoryEntry, data map[string]any) []store.HistoryEntry {
	val, _ := data["val"].(map[string]any)
	list, _ := val["entries"].([]map[string]any)
	var out []store.HistoryEntry
	for _, en := range list {
		path, _ := en["path"].(string)
		v := en["value"]
		text := fmt.Sprint(v)
		switch path {
		case "/3/0/3", "/5/0/3", "/5/0/5":
		default:
			continue
		}
		if !r.changed(h.Endpoint, path, text) {
			continue
		}
		e := h
		e.Kind = "firmware"
		switch path {
		case "/3/0/3":
			e.Version, e.Detail = text, "runs firmware "+text
		case "/5/0/3":
			n, _ := v.(int64)
			e.State, e.Detail = fwStates[n], fmt.Sprintf("Firmware Update state %s (%d)", fwStates[n], n)
		case "/5/0/5":
			n, _ := v.(int64)
			e.Result, e.Detail = int(n), fmt.Sprintf("Firmware Update result %d", n)
		}
		out = append(out, e)
	}
	return out
}
