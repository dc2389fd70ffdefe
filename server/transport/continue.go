package transport

import (
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// The server sends large payloads in a Block1 loop of its own, one request
// per block (server/block1.go), because go-coap's Block1 sender stalls for
// good when one 2.31 Continue is lost. But go-coap's blockwise layer keeps
// every request it sends with a body, and when a 2.31 answers it, sends
// "the next block" of that request itself: here a block past the end of
// the one-block body, which corrupts the device's transfer. So a 2.31
// answering a block of ours is taken off the blockwise path: its Block1
// option is noted under its token, and it reaches the waiting request as a
// 2.04, which the server turns back into the 2.31 it was (TakeContinue).

var continues sync.Map // string(token) -> *continueSlot

type continueSlot struct {
	mu        sync.Mutex
	seen      bool
	block1    uint32
	hasBlock1 bool
}

// ExpectContinue marks token as a block of the server's own Block1 loop.
// After the exchange, TakeContinue tells whether its answer was a 2.31;
// release forgets the token.
func ExpectContinue(token []byte) (release func()) {
	continues.Store(string(token), &continueSlot{})
	return func() { continues.Delete(string(token)) }
}

// TakeContinue reports whether the answer to token was a 2.31 Continue,
// and its Block1 option (nil when it had none).
func TakeContinue(token []byte) (block1 *uint32, continued bool) {
	v, found := continues.Load(string(token))
	if !found {
		return nil, false
	}
	s := v.(*continueSlot)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasBlock1 {
		b := s.block1
		block1 = &b
	}
	return block1, s.seen
}

// continueOption is the go-coap option that diverts those answers; it is
// also where received messages are counted for retransmissions
// (retransmit.go), go-coap taking only one such hook.
func continueOption(rt *retransmissions) options.ProcessReceivedMessageOpt[*udpClient.Conn] {
	return options.WithProcessReceivedMessageFunc(config.ProcessReceivedMessageFunc[*udpClient.Conn](
		func(m *pool.Message, cc *udpClient.Conn, h config.HandlerFunc[*udpClient.Conn]) {
			if rt != nil && m.Type() == message.Confirmable {
				rt.receivedCON(cc, m.MessageID())
			}
			if m.Code() == codes.Continue {
				if v, ok := continues.Load(string(m.Token())); ok {
					s := v.(*continueSlot)
					s.mu.Lock()
					s.seen = true
					v, err := m.GetOptionUint32(message.Block1)
					s.block1, s.hasBlock1 = v, err == nil
					s.mu.Unlock()
					m.Remove(message.Block1)
					m.SetCode(codes.Changed)
				}
			}
			cc.ProcessReceivedMessageWithHandler(m, h)
		}))
}
