package client

import (
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// ServerSession returns the CoAP session the client holds with its LwM2M
// server right now, with that server's scheme ("coap" or "coaps") and
// host:port as the Server URI names them, or a nil conn while disconnected
// or asleep. The Firmware Update object uses it to pull a package the
// server itself serves over the session it already has instead of a new
// DTLS handshake. The conn stays the client's: callers must not close it.
func (c *Client) ServerSession() (conn *udpclient.Conn, scheme, hostport string) {
	t := c.currentTarget()
	scheme = "coap"
	if t.secure {
		scheme = "coaps"
	}
	return c.currentConn(), scheme, t.addr
}

// rawBlock2 holds, per token of a request marked with RawBlock2, the
// Block2 option of its answer, taken out before go-coap's blockwise layer
// sees it (which would otherwise fetch and assemble all further blocks in
// memory, ../shared/notes trap 7).
var rawBlock2 sync.Map // token hash -> *rawAnswer

type rawAnswer struct {
	mu    sync.Mutex
	v     uint32
	given bool
}

// RawBlock2 marks req, a GET the caller sends itself over ServerSession's
// conn and runs its own Block2 loop for (RFC 7959 2.4): the answer's
// Block2 option is kept from go-coap's blockwise reassembly. After Do,
// call TakeBlock2 with the same request to get the option back (and to
// forget the mark).
func RawBlock2(req *pool.Message) {
	rawBlock2.Store(req.Token().Hash(), &rawAnswer{})
}

// TakeBlock2 returns the Block2 option of the answer to req (marked by
// RawBlock2), ok false when the answer had none, and forgets the mark.
func TakeBlock2(req *pool.Message) (v uint32, ok bool) {
	a, found := rawBlock2.LoadAndDelete(req.Token().Hash())
	if !found {
		return 0, false
	}
	r := a.(*rawAnswer)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.v, r.given
}

// hideRawBlock2 takes the Block2 option out of an answer to a request
// marked by RawBlock2 (called from the client's received-message hook).
func hideRawBlock2(m *pool.Message) {
	if m.Code() < codes.Created || len(m.Token()) == 0 {
		return // requests and empty messages: not an answer
	}
	a, ok := rawBlock2.Load(m.Token().Hash())
	if !ok {
		return
	}
	v, err := m.GetOptionUint32(message.Block2)
	if err != nil {
		return
	}
	r := a.(*rawAnswer)
	r.mu.Lock()
	r.v, r.given = v, true
	r.mu.Unlock()
	m.Remove(message.Block2)
}
