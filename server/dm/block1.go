package dm

import (
	"context"
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"github.com/fotastack/fota/server/transport"
)

// A payload larger than one block goes to the device as a Block1 transfer
// (RFC 7959 2.5) driven here, one confirmable exchange per block, not by
// go-coap's Block1 sender: that one stalls for good when a single 2.31
// Continue is lost (measured with go-coap v3.8.0), which over a lossy
// link is most pushes of a package. Each block here is its own request:
// a lost block or a lost answer is resent by CoAP's retransmission, and
// the device answers a repeated block from its response cache or as a
// block it already holds.

// blockBytes is the block size the server uses towards sess.
func (s *Server) blockBytes(sess *transport.Session) int {
	if t, ok := s.cfg.Transmission.lookup(sess.Identity); ok {
		return t.BlockBytes()
	}
	return 1024
}

// errBlock1 reports a Block1 answer that does not follow the transfer.
var errBlock1 = errors.New("device answered out of the Block1 transfer")

// sendBlock1 sends req.Payload in blocks of size bytes (a power of two,
// 16 to 1024) and returns the device's answer to the last block, or the
// first answer that is not 2.31 Continue. The device may ask for smaller
// blocks in its 2.31 (RFC 7959 2.5); the transfer goes on in its size.
func (s *Server) sendBlock1(ctx context.Context, sess *transport.Session, req Request, size int) (*Response, error) {
	total := len(req.Payload)
	szx, err := szxOf(size)
	if err != nil {
		return nil, err
	}
	off := 0
	for {
		end := min(off+size, total)
		num := int64(off / size)
		more := end < total
		opt, err := blockwise.EncodeBlockOption(szx, num, more)
		if err != nil {
			return nil, fmt.Errorf("block1 option for block %d: %w", num, err)
		}
		b := req
		b.Payload = req.Payload[off:end]
		b.Token = nil // a token per exchange: each block is its own request
		b.block1 = &opt
		if off == 0 {
			t := uint32(total)
			b.size1 = &t
		}
		resp, err := s.send(ctx, sess, b)
		if err != nil {
			return nil, fmt.Errorf("block %d (bytes %d-%d of %d): %w", num, off, end, total, err)
		}
		if req.Progress != nil && resp.Success() { // 2.31 Continue is a success too
			req.Progress(end, total)
		}
		if !more || resp.Code != codes.Continue {
			return resp, nil
		}
		if resp.block1 == nil {
			return nil, fmt.Errorf("%w: 2.31 to block %d without a Block1 option", errBlock1, num)
		}
		rszx, rnum, _, err := blockwise.DecodeBlockOption(*resp.block1)
		if err != nil || rnum != num {
			return nil, fmt.Errorf("%w: 2.31 to block %d acknowledges block %d", errBlock1, num, rnum)
		}
		if n := int(rszx.Size()); n < size {
			szx, size = rszx, n // the device wants smaller blocks; end is a multiple of n
		}
		off = end
	}
}

// szxOf is the block size exponent of size bytes.
func szxOf(size int) (blockwise.SZX, error) {
	for szx := blockwise.SZX16; szx <= blockwise.SZX1024; szx++ {
		if int(szx.Size()) == size {
			return szx, nil
		}
	}
	return 0, fmt.Errorf("block size %d is not a power of two from 16 to 1024", size)
}
