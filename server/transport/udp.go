package transport

import (
	"fmt"
	"log/slog"
	"net"

	"time"

	"github.com/plgd-dev/go-coap/v3/mux"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpServer "github.com/plgd-dev/go-coap/v3/udp/server"
)

// Limits shared by both transports.
const (
	// MaxMessageSize bounds a reassembled blockwise body (trap 7: go-coap
	// reassembles in memory without a limit otherwise).
	MaxMessageSize = 256 << 10
	// blockwiseTimeout bounds a whole blockwise transfer, not one block
	// (trap 3): long enough for NB-IoT round trips.
	blockwiseTimeout = 3 * time.Minute
	// plainIdle is how long an idle plain-CoAP peer keeps its go-coap
	// connection object; a new one is made on the next datagram, so this
	// only bounds memory.
	plainIdle = 10 * time.Minute
)

// UDP is a plain CoAP listener.
type UDP struct {
	srv      *udpServer.Server
	conn     *coapNet.UDPConn
	sessions sessionTable
	done     chan struct{}
	log      *slog.Logger
	rt       retransmissions // received only: writes go straight to the socket
}

// Retransmissions reports the devices' CoAP retransmissions received on
// the plain CoAP listener (Sent stays 0: see retransmit.go).
func (u *UDP) Retransmissions() RetransmissionStats { return u.rt.stats() }

// ListenUDP starts plain CoAP on addr, serving h.
func ListenUDP(addr string, h mux.Handler, log *slog.Logger) (*UDP, error) {
	if log == nil {
		log = slog.Default()
	}
	pc, err := listenUDP(addr)
	if err != nil {
		return nil, err
	}
	u := &UDP{conn: coapNet.NewUDPConn("udp", pc), done: make(chan struct{}), log: log}
	u.srv = udp.NewServer(
		options.WithMux(mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
			s := u.session(w.Conn())
			if s != nil {
				r.SetContext(WithSession(r.Context(), s))
			}
			h.ServeCOAP(w, r)
		})),
		options.WithMaxMessageSize(MaxMessageSize),
		options.WithBlockwise(true, blockwise.SZX1024, blockwiseTimeout),
		options.WithInactivityMonitor(plainIdle, func(cc *udpClient.Conn) { _ = cc.Close() }),
		options.WithErrors(func(err error) { log.Debug("coap", "err", err) }),
		continueOption(&u.rt),
	)
	go func() {
		defer close(u.done)
		if err := u.srv.Serve(u.conn); err != nil {
			log.Error("coap listener stopped", "addr", addr, "err", err)
		}
	}()
	return u, nil
}

func (u *UDP) session(c mux.Conn) *Session {
	cc, ok := c.(*udpClient.Conn)
	if !ok {
		return nil
	}
	if s := u.sessions.get(cc); s != nil {
		return s
	}
	s := &Session{Conn: cc, Scheme: "coap", Security: SecurityNone}
	u.sessions.put(cc, s)
	cc.AddOnClose(func() { u.sessions.remove(cc) })
	return s
}

// Addr is the listening address.
func (u *UDP) Addr() net.Addr { return u.conn.LocalAddr() }

// Session returns a session to a plain CoAP peer at addr, making a
// connection if none is open: how the server reaches a device after a
// restart, before the device has sent anything.
func (u *UDP) Session(addr string) (*Session, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", addr, err)
	}
	cc, err := u.srv.NewConn(ua)
	if err != nil {
		return nil, fmt.Errorf("coap connection to %s: %w", addr, err)
	}
	return u.session(cc), nil
}

// Close stops the listener and waits for its reader to end.
func (u *UDP) Close() error {
	u.srv.Stop()
	<-u.done
	return nil
}
