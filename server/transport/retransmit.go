package transport

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	dtlsServer "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/monitor/inactivity"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Retransmissions are counted where go-coap gives us the bytes, since it
// has no counter of its own: a confirmable message whose message ID was
// already seen on the same connection is a retransmission (RFC 7252
// 4.2: a retransmission keeps its message ID; go-coap takes IDs from a
// process-wide counter, so a new message repeats one only after 65,536).
//   - received: devices' confirmable messages, on every listener, seen
//     where received messages enter go-coap (continueOption's hook);
//   - sent: the server's own, on DTLS sessions, seen as plaintext on
//     their way into the DTLS connection (dtlsCoAPClient). Plain CoAP
//     writes go from go-coap straight to the socket: not counted.
type retransmissions struct {
	sent, received atomic.Int64
	conns          sync.Map // *udpClient.Conn -> *midRing of received IDs
}

// RetransmissionStats are the listener's retransmission counters.
type RetransmissionStats struct {
	// Sent: confirmable messages the server sent again for want of an
	// acknowledgement (DTLS sessions only).
	Sent int64
	// Received: confirmable messages devices sent again (their
	// acknowledgement or answer from us was lost or late).
	Received int64
}

func (r *retransmissions) stats() RetransmissionStats {
	if r == nil {
		return RetransmissionStats{}
	}
	return RetransmissionStats{Sent: r.sent.Load(), Received: r.received.Load()}
}

// receivedCON notes a confirmable message from cc.
func (r *retransmissions) receivedCON(cc *udpClient.Conn, mid int32) {
	v, loaded := r.conns.LoadOrStore(cc, &midRing{})
	if !loaded {
		cc.AddOnClose(func() { r.conns.Delete(cc) })
	}
	if v.(*midRing).seen(mid) {
		r.received.Add(1)
	}
}

// midRing remembers the last message IDs of one connection: enough for
// the retransmissions of the few exchanges in flight (NSTART is 1).
type midRing struct {
	mu   sync.Mutex
	mids [32]int32
	n    int
}

// seen records mid and reports whether it was there already.
func (r *midRing) seen(mid int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 0; i < min(r.n, len(r.mids)); i++ {
		if r.mids[i] == mid {
			return true
		}
	}
	r.mids[r.n%len(r.mids)] = mid
	r.n++
	return false
}

// countingConn is a DTLS connection whose writes (one CoAP message each,
// in plaintext) are looked at for retransmitted confirmable messages.
type countingConn struct {
	net.Conn
	ring midRing
	sent *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	// CoAP over UDP header: version 1 in the two top bits, then the type
	// (0: confirmable), token length; message ID in bytes 2 and 3.
	if len(p) >= 4 && p[0]>>6 == 1 && (p[0]>>4)&3 == uint8(message.Confirmable) {
		if c.ring.seen(int32(binary.BigEndian.Uint16(p[2:4]))) {
			c.sent.Add(1)
		}
	}
	return c.Conn.Write(p)
}

// dtlsCoAPClient is go-coap's dtls.Client (v3.8.0) with the connection
// wrapped in a countingConn: the same configuration, session and
// connection, built by hand because Client takes the *dtls.Conn itself.
func dtlsCoAPClient(conn *dtls.Conn, rt *retransmissions, opts ...udp.Option) *udpClient.Conn {
	cfg := coapdtls.DefaultConfig
	for _, o := range opts {
		o.UDPClientApply(&cfg)
	}
	cfg.QBlockwiseSecure = true
	if cfg.Errors == nil {
		cfg.Errors = func(error) {}
	}
	if _, err := cfg.QBlockwiseConfig.Resolve(); err != nil {
		cfg.Errors(err)
	}
	if err := blockwise.ValidateQBlockwiseConfig(cfg.QBlockwiseMode, cfg.BlockwiseEnable); err != nil {
		cfg.Errors(err)
	}
	if cfg.CreateInactivityMonitor == nil {
		cfg.CreateInactivityMonitor = func() udpClient.InactivityMonitor {
			return inactivity.NewNilMonitor[*udpClient.Conn]()
		}
	}
	if cfg.MessagePool == nil {
		cfg.MessagePool = pool.New(0, 0)
	}
	errorsFunc := cfg.Errors
	cfg.Errors = func(err error) {
		if coapNet.IsCancelOrCloseError(err) {
			return
		}
		errorsFunc(fmt.Errorf("dtls: %v: %w", conn.RemoteAddr(), err))
	}
	createBlockWise := func(*udpClient.Conn) *blockwise.BlockWise[*udpClient.Conn] { return nil }
	if cfg.BlockwiseEnable {
		createBlockWise = func(cc *udpClient.Conn) *blockwise.BlockWise[*udpClient.Conn] {
			bw := blockwise.New(cc, cfg.BlockwiseTransferTimeout, cfg.Errors,
				func(token message.Token) (*pool.Message, bool) { return cc.GetObservationRequest(token) })
			bw.SetReceivingMessagesCacheMaxEntries(cfg.BlockwiseReceivingMessagesCacheMaxEntries)
			return bw
		}
	}
	monitor := cfg.CreateInactivityMonitor()
	var nc net.Conn = conn
	if rt != nil {
		nc = &countingConn{Conn: conn, sent: &rt.sent}
	}
	session := dtlsServer.NewSession(cfg.Ctx, coapNet.NewConn(nc), cfg.MaxMessageSize, cfg.MTU, cfg.CloseSocket)
	cc := udpClient.NewConnWithOpts(session, &cfg,
		udpClient.WithBlockWise(createBlockWise),
		udpClient.WithInactivityMonitor(monitor),
		udpClient.WithRequestMonitor(cfg.RequestMonitor),
	)
	cfg.PeriodicRunner(func(now time.Time) bool {
		cc.CheckExpirations(now)
		return cc.Context().Err() == nil
	})
	go func() {
		if err := cc.Run(); err != nil {
			cfg.Errors(err)
		}
	}()
	return cc
}
