// Package events is the server's event bus: registrations, updates,
// notifications, Send and campaign progress are published here by the parts
// that see them and read by the HTTP API's event stream (SSE) and by the
// campaign engine.
package events

import (
	"sync"
	"time"
)

// Event types of the event stream, named as in Leshan's server demo.
const (
	Registration   = "REGISTRATION"
	Updated        = "UPDATED"
	Deregistration = "DEREGISTRATION"
	Notification   = "NOTIFICATION"
	Send           = "SEND"
	// Campaign is a change of a campaign or of one of its devices.
	Campaign = "CAMPAIGN"
)

// Event is something that happened to a device.
type Event struct {
	Type     string    `json:"type"`
	Endpoint string    `json:"endpoint"`
	Time     time.Time `json:"time"`
	Data     any       `json:"data"`
}

// Broker fans events out to subscribers. A subscriber that does not keep
// up loses events (its channel is bounded) rather than slowing devices.
type Broker struct {
	mu     sync.Mutex
	subs   map[chan Event]struct{}
	closed bool
}

// NewBroker returns a broker with no subscribers.
func NewBroker() *Broker { return &Broker{subs: map[chan Event]struct{}{}} }

// Subscribe returns a channel of events and a function that ends the
// subscription (and closes the channel).
func (b *Broker) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, buffer)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// Active reports whether anyone is subscribed: publishers whose event data
// costs something to build skip it when nobody listens.
func (b *Broker) Active() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) > 0
}

// Publish sends e to every subscriber that has room.
func (b *Broker) Publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// Close ends all subscriptions.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		close(ch)
		delete(b.subs, ch)
	}
}
