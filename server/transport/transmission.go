package transport

import (
	"time"

	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
)

// Transmission is the set of CoAP transmission parameters (RFC 7252 4.8)
// the server uses towards one kind of device.
type Transmission struct {
	// ACKTimeout is the initial retransmission timeout of a confirmable
	// message (RFC 7252 default 2 s).
	ACKTimeout time.Duration
	// ACKRandomFactor spreads the first timeout over
	// [ACKTimeout, ACKTimeout*ACKRandomFactor] (default 1.5).
	ACKRandomFactor float64
	// MaxRetransmit is the number of retransmissions (default 4).
	MaxRetransmit uint32
	// NStart is the number of outstanding interactions (RFC 7252 4.7;
	// 1 is the default and what constrained links need).
	NStart int
	// BlockSize is the block size (64..1024 bytes) of the blockwise
	// transfers go-coap makes towards the device; a device may always ask
	// for smaller blocks (RFC 7959 2.4), which is how it chooses its own.
	BlockSize int
}

// option is the go-coap option for p, with RFC 7252's defaults for the
// fields left zero.
func (p Transmission) option() options.TransmissionOpt {
	nstart := uint32(1)
	if p.NStart > 0 {
		nstart = uint32(p.NStart)
	}
	ack := p.ACKTimeout
	if ack <= 0 {
		ack = 2 * time.Second
	}
	retx := p.MaxRetransmit
	if retx == 0 {
		retx = 4
	}
	if p.ACKRandomFactor >= 1 {
		return options.WithTransmission(nstart, ack, retx, p.ACKRandomFactor)
	}
	return options.WithTransmission(nstart, ack, retx)
}

// szx is the block size exponent for BlockSize (RFC 7959 2.2: 16 << SZX
// bytes), at most 1024 and at least 64 bytes (smaller blocks cost more
// headers than they save on any link we model); 0 means 1024.
func (p Transmission) szx() blockwise.SZX {
	switch {
	case p.BlockSize == 0 || p.BlockSize >= 1024:
		return blockwise.SZX1024
	case p.BlockSize >= 512:
		return blockwise.SZX512
	case p.BlockSize >= 256:
		return blockwise.SZX256
	case p.BlockSize >= 128:
		return blockwise.SZX128
	default:
		return blockwise.SZX64
	}
}

// BlockBytes is the block size, in bytes, of the blockwise transfers the
// server makes towards a device with these parameters.
func (p Transmission) BlockBytes() int { return int(p.szx().Size()) }
