package transport

import (
	"sync"
	"time"

	"github.com/pion/logging"
)

// Shared per-listener machinery that pion and go-coap would otherwise
// build once per connection: a handshake plus a registration paid for a
// logger factory (a dozen environment lookups and five log.Loggers) and a
// goroutine with its own timer for go-coap's expiration checks.

// sharedLoggerFactory hands out one pion logger per scope. pion's default
// (used when a Config has no LoggerFactory) builds a new factory and new
// loggers for every connection; this one is configured the same way
// (logging.NewDefaultLoggerFactory: errors to stderr, PION_LOG_* from the
// environment) but only once per listener.
type sharedLoggerFactory struct {
	base *logging.DefaultLoggerFactory
	mu   sync.Mutex
	m    map[string]logging.LeveledLogger
}

func newSharedLoggerFactory() *sharedLoggerFactory {
	return &sharedLoggerFactory{base: logging.NewDefaultLoggerFactory(), m: map[string]logging.LeveledLogger{}}
}

// NewLogger implements logging.LoggerFactory.
func (f *sharedLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.m[scope]
	if !ok {
		l = f.base.NewLogger(scope)
		f.m[scope] = l
	}
	return l
}

// periodicPeriod is how often each connection's expiration check runs.
// go-coap retransmits the confirmable requests we sent only from this
// check, so it bounds how late a retransmission goes out: with go-coap's
// default of 4 s, a lost block of a push waited 4 s whatever the
// ACK_TIMEOUT (2 s by RFC 7252). Every second keeps a retransmission
// within a second of its time; only live connections are checked
// (hibernated ones have none), a few microseconds each.
const periodicPeriod = time.Second

// periodicSlots splits the period so that the checks of connections made
// at different times are spread over it.
const periodicSlots = 4

// periodicRunner is go-coap's PeriodicRunner (options.WithPeriodicRunner)
// for all the connections of a listener: one goroutine and one ticker run
// every connection's check (CheckExpirations: response cache, blockwise
// cache, retransmissions of requests we sent) every periodicPeriod, instead
// of a goroutine sleeping in a loop per connection. A check that returns
// false (its connection closed) is dropped.
type periodicRunner struct {
	mu    sync.Mutex
	slots [periodicSlots][]func(time.Time) bool
	next  int // the slot the next tick runs
	stop  chan struct{}
	done  chan struct{}
}

func newPeriodicRunner() *periodicRunner {
	r := &periodicRunner{stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// add is the periodic.Func: it runs f once now, as go-coap's default
// runner does, then every periodicPeriod until f returns false.
func (r *periodicRunner) add(f func(time.Time) bool) {
	if !f(time.Now()) {
		return
	}
	r.mu.Lock()
	// The slot just run comes again in a full period.
	i := (r.next + periodicSlots - 1) % periodicSlots
	r.slots[i] = append(r.slots[i], f)
	r.mu.Unlock()
}

func (r *periodicRunner) loop() {
	defer close(r.done)
	t := time.NewTicker(periodicPeriod / periodicSlots)
	defer t.Stop()
	var batch []func(time.Time) bool
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.mu.Lock()
			i := r.next
			r.next = (r.next + 1) % periodicSlots
			batch = append(batch[:0], r.slots[i]...)
			// Cleared, not only truncated: a check holds its connection
			// (conns and buffers of a closed session) until dropped.
			clear(r.slots[i])
			r.slots[i] = r.slots[i][:0]
			r.mu.Unlock()
			// Run outside the lock: a check may write a retransmission, and
			// connections are being added meanwhile.
			keep := batch[:0]
			for _, f := range batch {
				if f(now) {
					keep = append(keep, f)
				}
			}
			r.mu.Lock()
			r.slots[i] = append(r.slots[i], keep...)
			r.mu.Unlock()
			clear(batch[len(keep):cap(batch)])
		}
	}
}

// close stops the runner; the checks still registered are not run again
// (their connections are closed by then).
func (r *periodicRunner) close() {
	close(r.stop)
	<-r.done
}
