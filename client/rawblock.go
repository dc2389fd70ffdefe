package client

import (
	"context"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// block1Key carries a request's Block1 option past go-coap's blockwise
// layer (see rawBlock1Option).
type block1Key struct{}

// Block1 returns the Block1 option (RFC 7959 2.2) of a request handed to a
// RawHandler. go-coap reassembles Block1 bodies in memory with no bound
// (../shared/notes trap 7); for paths a RawHandler takes, the client
// removes the option before go-coap's blockwise layer sees the request, so
// each block reaches the handler as it arrives, and the handler answers
// 2.31 Continue itself. ok is false for a request sent without Block1.
func Block1(r *mux.Message) (v uint32, ok bool) {
	v, ok = r.Context().Value(block1Key{}).(uint32)
	return v, ok
}

// rawBlock1Option hides the Block1 option of requests a RawHandler takes
// from go-coap's blockwise reassembly. It keeps go-coap's own processing
// otherwise, deduplication by message ID included: a retransmitted block
// gets the cached answer.
func (c *Client) rawBlock1Option() udpclientOption {
	return options.WithProcessReceivedMessageFunc(config.ProcessReceivedMessageFunc[*udpclient.Conn](
		func(req *pool.Message, cc *udpclient.Conn, h config.HandlerFunc[*udpclient.Conn]) {
			hideRawBlock2(req) // serverconn.go: answers to a caller's own Block2 loop
			if v, err := req.GetOptionUint32(message.Block1); err == nil && (req.Code() == codes.PUT || req.Code() == codes.POST) {
				if ps, err := req.Options().Path(); err == nil {
					if p, err := lwm2m.ParsePath(ps); err == nil && c.rawHandler(p, req.Code()) != nil {
						req.Remove(message.Block1)
						req.SetContext(context.WithValue(req.Context(), block1Key{}, v))
					}
				}
			}
			cc.ProcessReceivedMessageWithHandler(req, h)
		}))
}

type udpclientOption = options.ProcessReceivedMessageOpt[*udpclient.Conn]
