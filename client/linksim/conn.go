package linksim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// ErrMTU is returned by a write over the link's MTU when Profile.MTUError
// is set.
var ErrMTU = errors.New("datagram exceeds the link MTU")

// downQueue bounds datagrams delivered by the link and not yet read: a
// modem's buffer, not an unbounded queue.
const downQueue = 256

type datagram struct {
	b    []byte
	from net.Addr
}

// PacketConn is a UDP socket behind a simulated link: it delays, drops,
// duplicates and reorders datagrams both ways, limits their rate and size,
// and moves to a new source port after an idle period as a carrier NAT
// does. It keeps its identity across such rebindings; LocalAddr changes.
// It is safe for concurrent use.
type PacketConn struct {
	p      Profile
	bindIP net.IP

	mu       sync.Mutex
	rng      *rand.Rand
	pc       net.PacketConn
	last     time.Time // last datagram either way, for the NAT timeout
	upFree   time.Time // when the uplink is free again (token bucket)
	downFree time.Time
	rebinds  int
	dropped  int
	closed   bool

	inbox chan datagram
	done  chan struct{}
	rd    *deadline.Deadline
	wg    sync.WaitGroup // socket readers (pending timers only drop into inbox or send to a closed socket)
}

// Listen opens a UDP socket on ip (port chosen by the system) behind a
// link with profile p; seed makes the impairments reproducible.
func Listen(ip net.IP, p Profile, seed uint64) (*PacketConn, error) {
	c := &PacketConn{
		p:      p,
		bindIP: ip,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		inbox:  make(chan datagram, downQueue),
		done:   make(chan struct{}),
		rd:     deadline.New(),
		last:   time.Now(),
	}
	if err := c.bindLocked(); err != nil {
		return nil, err
	}
	return c, nil
}

// bindLocked opens a fresh socket and starts its reader.
func (c *PacketConn) bindLocked() error {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: c.bindIP})
	if err != nil {
		return fmt.Errorf("linksim: bind: %w", err)
	}
	c.pc = pc
	c.wg.Add(1)
	go c.read(pc)
	return nil
}

// read receives from one socket until it is closed (a rebinding or
// Close) and passes datagrams through the downlink.
func (c *PacketConn) read(pc net.PacketConn) {
	defer c.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		b := append([]byte(nil), buf[:n]...)
		c.mu.Lock()
		c.last = time.Now()
		delays, ok := c.impairLocked(len(b), &c.downFree, c.p.DownRate)
		c.mu.Unlock()
		if !ok {
			continue
		}
		for _, d := range delays {
			dg := datagram{b: b, from: from}
			time.AfterFunc(d, func() {
				select {
				case c.inbox <- dg:
				case <-c.done:
				default: // the modem buffer is full
				}
			})
		}
	}
}

// impairLocked draws the fate of one datagram of n bytes on a direction:
// the delays at which its copies arrive, or false if it is lost.
func (c *PacketConn) impairLocked(n int, free *time.Time, rate int) ([]time.Duration, bool) {
	p := c.p
	if p.MTU > 0 && n > p.MTU {
		c.dropped++
		return nil, false
	}
	if p.Loss > 0 && c.rng.Float64() < p.Loss {
		c.dropped++
		return nil, false
	}
	now := time.Now()
	// Token bucket: the datagram leaves once the link has sent what was
	// queued before it; Burst bytes may go at once.
	var queue time.Duration
	if rate > 0 {
		tx := time.Duration(int64(n) * 8 * int64(time.Second) / int64(rate))
		credit := time.Duration(int64(p.Burst) * 8 * int64(time.Second) / int64(rate))
		start := *free
		if earliest := now.Add(-credit); start.Before(earliest) {
			start = earliest
		}
		*free = start.Add(tx)
		if free.After(now) {
			queue = free.Sub(now)
		}
	}
	one := func() time.Duration {
		d := queue + p.Latency
		if p.Jitter > 0 {
			d += time.Duration(c.rng.Int64N(int64(p.Jitter)))
		}
		if p.Reorder > 0 && c.rng.Float64() < p.Reorder {
			d += p.ReorderDelay
		}
		return d
	}
	out := []time.Duration{one()}
	if p.Duplicate > 0 && c.rng.Float64() < p.Duplicate {
		out = append(out, one())
	}
	return out, true
}

// WriteTo sends b to addr over the link's uplink.
func (c *PacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if c.p.MTU > 0 && len(b) > c.p.MTU && c.p.MTUError {
		c.mu.Unlock()
		return 0, fmt.Errorf("linksim: write %d bytes over MTU %d: %w", len(b), c.p.MTU, ErrMTU)
	}
	now := time.Now()
	if c.p.NATTimeout > 0 && now.Sub(c.last) > c.p.NATTimeout {
		// The carrier NAT forgot the binding: the datagram leaves from a
		// new port, and answers to the old one are lost.
		old := c.pc
		if err := c.bindLocked(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
		_ = old.Close()
		c.rebinds++
	}
	c.last = now
	pc := c.pc
	delays, ok := c.impairLocked(len(b), &c.upFree, c.p.UpRate)
	c.mu.Unlock()
	if !ok {
		return len(b), nil // lost on the way, as UDP does
	}
	cp := append([]byte(nil), b...)
	for _, d := range delays {
		if d <= 0 {
			_, _ = pc.WriteTo(cp, addr)
			continue
		}
		time.AfterFunc(d, func() { _, _ = pc.WriteTo(cp, addr) })
	}
	return len(b), nil
}

// ReadFrom returns the next datagram the downlink delivered.
func (c *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case dg := <-c.inbox:
		return copy(b, dg.b), dg.from, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	case <-c.rd.Done():
		return 0, nil, timeoutError{}
	}
}

// Close closes the socket. Datagrams still in flight are dropped.
func (c *PacketConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	pc := c.pc
	close(c.done)
	c.mu.Unlock()
	err := pc.Close()
	c.wg.Wait()
	return err
}

// LocalAddr is the current local address; it changes on a NAT rebinding.
func (c *PacketConn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pc.LocalAddr()
}

// SetDeadline sets the read deadline; writes never block.
func (c *PacketConn) SetDeadline(t time.Time) error { c.rd.Set(t); return nil }

// SetReadDeadline sets the read deadline.
func (c *PacketConn) SetReadDeadline(t time.Time) error { c.rd.Set(t); return nil }

// SetWriteDeadline is accepted and ignored: writes never block.
func (c *PacketConn) SetWriteDeadline(time.Time) error { return nil }

// Stats reports the NAT rebindings so far and the datagrams the link
// dropped (loss and MTU).
func (c *PacketConn) Stats() (rebinds, dropped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rebinds, c.dropped
}

// Conn is a PacketConn with a fixed peer, as a net.Conn (what a dialled
// UDP socket is).
type Conn struct {
	*PacketConn
	remote net.Addr
}

// Dial opens a link socket on ip towards remote.
func Dial(ip net.IP, remote net.Addr, p Profile, seed uint64) (*Conn, error) {
	pc, err := Listen(ip, p, seed)
	if err != nil {
		return nil, err
	}
	return &Conn{PacketConn: pc, remote: remote}, nil
}

// Read returns the next datagram from the peer; others are discarded.
func (c *Conn) Read(b []byte) (int, error) {
	for {
		n, from, err := c.ReadFrom(b)
		if err != nil {
			return n, err
		}
		if from.String() == c.remote.String() {
			return n, nil
		}
	}
}

// Write sends b to the peer.
func (c *Conn) Write(b []byte) (int, error) { return c.WriteTo(b, c.remote) }

// RemoteAddr is the peer.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var (
	_ net.PacketConn = (*PacketConn)(nil)
	_ net.Conn       = (*Conn)(nil)
)
