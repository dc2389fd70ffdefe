package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotastack/fota/server/transport"
)

// The record relay: DTLS records whose Connection ID names another node go
// to that node over UDP on the cluster address, and the owner's answers
// come back the same way to be sent from the receiving node's socket
// (transport/relay.go has the other half). Each frame is authenticated
// with HMAC-SHA256 (truncated to 16 bytes) under the cluster secret, so
// nothing but a node can make another node send datagrams; replays need no
// guard here, since the DTLS record inside has its own replay window.
//
//	byte 0      'F'
//	byte 1      kind: 1 device -> owner, 2 owner -> device
//	bytes 2-3   sender's node number
//	bytes 4-9   the device's IPv4 address and port (as the front sees it)
//	bytes 10-25 MAC over bytes 0-9 and the record
//	bytes 26-   the record
const (
	frameIn   = 1
	frameOut  = 2
	frameHead = 10
	frameMAC  = 16
)

// relay is the node's UDP side of the cluster address.
type relay struct {
	n     *Node
	pc    *net.UDPConn
	dtls  atomic.Pointer[transport.DTLS]
	nodes atomic.Pointer[map[uint16]nodeAddr]
	wg    sync.WaitGroup
	stop  chan struct{}

	relayed, returned, deadDrops, badFrames atomic.Int64
}

type nodeAddr struct {
	addr netip.AddrPort
	live bool
	id   string
}

func newRelay(n *Node) (*relay, error) {
	ua, err := net.ResolveUDPAddr("udp", n.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cluster: cluster address %s: %w", n.cfg.Addr, err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen on the cluster address %s (udp, relayed DTLS records): %w", n.cfg.Addr, err)
	}
	r := &relay{n: n, pc: pc, stop: make(chan struct{})}
	empty := map[uint16]nodeAddr{}
	r.nodes.Store(&empty)
	r.refresh()
	r.wg.Add(2)
	go r.readLoop()
	go r.refreshLoop()
	return r, nil
}

// refresh reads the node table: who is alive, at which address.
func (r *relay) refresh() {
	ns, err := r.n.st.Nodes()
	if err != nil {
		return // keep the last table; the heartbeat logs the database's state
	}
	m := make(map[uint16]nodeAddr, len(ns))
	for _, x := range ns {
		ap, err := netip.ParseAddrPort(x.Addr)
		if err != nil {
			if ua, e := net.ResolveUDPAddr("udp", x.Addr); e == nil {
				ap = ua.AddrPort()
			}
		}
		m[uint16(x.No)] = nodeAddr{addr: ap, live: x.Live, id: x.ID}
	}
	r.nodes.Store(&m)
}

func (r *relay) refreshLoop() {
	defer r.wg.Done()
	every := max(r.n.cfg.Lease/3, 200*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.refresh()
		}
	}
}

func (r *relay) frame(kind byte, device netip.AddrPort, rec []byte) ([]byte, error) {
	return encodeFrame(r.n.secret, kind, uint16(r.n.self.No), device, rec)
}

// encodeFrame makes a frame of kind from node sender about device.
func encodeFrame(secret []byte, kind byte, sender uint16, device netip.AddrPort, rec []byte) ([]byte, error) {
	ip := device.Addr().Unmap()
	if !ip.Is4() {
		return nil, errors.New("relay: not an IPv4 device address")
	}
	b := make([]byte, frameHead+frameMAC+len(rec))
	b[0], b[1] = 'F', kind
	binary.BigEndian.PutUint16(b[2:4], sender)
	v4 := ip.As4()
	copy(b[4:8], v4[:])
	binary.BigEndian.PutUint16(b[8:10], device.Port())
	copy(b[frameHead+frameMAC:], rec)
	copy(b[frameHead:frameHead+frameMAC], frameMACOf(secret, b[:frameHead], rec))
	return b, nil
}

func frameMACOf(secret, head, rec []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(head)
	h.Write(rec)
	return h.Sum(nil)[:frameMAC]
}

// errBadFrame: a datagram on the cluster address that is not a frame of a
// node holding the secret (too short, another protocol, a wrong MAC).
var errBadFrame = errors.New("relay: not a frame of this cluster")

// decodeFrame checks b's MAC and returns its fields; rec aliases b.
func decodeFrame(secret, b []byte) (kind byte, sender uint16, device netip.AddrPort, rec []byte, err error) {
	// 13 bytes: the smallest DTLS record header.
	if len(b) < frameHead+frameMAC+13 || b[0] != 'F' || (b[1] != frameIn && b[1] != frameOut) {
		return 0, 0, netip.AddrPort{}, nil, errBadFrame
	}
	head, rec := b[:frameHead], b[frameHead+frameMAC:]
	if !hmac.Equal(b[frameHead:frameHead+frameMAC], frameMACOf(secret, head, rec)) {
		return 0, 0, netip.AddrPort{}, nil, errBadFrame
	}
	device = netip.AddrPortFrom(netip.AddrFrom4([4]byte(head[4:8])), binary.BigEndian.Uint16(head[8:10]))
	return head[1], binary.BigEndian.Uint16(head[2:4]), device, rec, nil
}

// foreign is transport.ClusterRouting.Foreign: a record for another node's
// session. A live owner gets it relayed. A dead owner's session is gone with
// it (its keys were only in its memory), so the record is dropped, as RFC
// 6347 4.1.2.7 asks of records that cannot be processed: no alert, since
// one could not be authenticated and DTLS stacks (pion among them) rightly
// ignore plaintext alerts on an established session. The device notices
// at its next exchange's timeout and handshakes anew through the balancer
// (doc/cluster.md).
func (r *relay) foreign(node uint16, rec []byte, from netip.AddrPort) {
	dst, ok := (*r.nodes.Load())[node]
	if !ok || !dst.live || !dst.addr.IsValid() {
		r.deadDrops.Add(1)
		return
	}
	b, err := r.frame(frameIn, from, rec)
	if err != nil {
		return
	}
	if _, err := r.pc.WriteToUDPAddrPort(b, dst.addr); err == nil {
		r.relayed.Add(1)
	}
}

// back is transport.ClusterRouting.Relay: the owner's record for a device
// that reaches it through node's front.
func (r *relay) back(node uint16, to netip.AddrPort, rec []byte) error {
	dst, ok := (*r.nodes.Load())[node]
	if !ok || !dst.addr.IsValid() {
		return fmt.Errorf("relay: node %d unknown", node)
	}
	b, err := r.frame(frameOut, to, rec)
	if err != nil {
		return err
	}
	_, err = r.pc.WriteToUDPAddrPort(b, dst.addr)
	return err
}

func (r *relay) readLoop() {
	defer r.wg.Done()
	buf := make([]byte, 8192)
	for {
		n, _, err := r.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		kind, sender, device, rec, err := decodeFrame(r.n.secret, buf[:n])
		if err != nil {
			r.badFrames.Add(1)
			continue
		}
		d := r.dtls.Load()
		if d == nil {
			continue
		}
		data := append([]byte(nil), rec...)
		switch kind {
		case frameIn:
			from, err := transport.RelayAddr(sender, device)
			if err == nil {
				d.Inject(data, from)
			}
		case frameOut:
			if err := d.SendTo(data, device); err == nil {
				r.returned.Add(1)
			}
		}
	}
}

func (r *relay) close() {
	close(r.stop)
	_ = r.pc.Close()
	r.wg.Wait()
}

// RelayStats counts records relayed to their owners, records sent back out
// for other nodes, records for dead nodes' sessions dropped, and frames
// refused (bad MAC or shape).
type RelayStats struct {
	Relayed   int64 `json:"relayed"`
	Returned  int64 `json:"returned"`
	DeadDrops int64 `json:"deadDrops"`
	BadFrames int64 `json:"badFrames"`
}
