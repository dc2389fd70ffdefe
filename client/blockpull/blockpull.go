// Package blockpull is a device's own Block2 download (RFC 7959 2.4) of a
// package named by a Package URI: the URI's checks, one block request at a
// time over a session the caller keeps, and the session to the package
// server. Firmware Update (/5, client/firmware) and Software Management (/9,
// client/software) both pull this way; what they do with the blocks (staging
// flash, a package file, their result codes) stays with them.
//
// The device runs the loop itself, not go-coap's blockwise layer, so that
// every block is written and recorded before the next is asked for and a
// download resumes from the last block after a reboot.
package blockpull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/fotastack/fota/client"
	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Errors of ParseURI, which each object maps to its own Update Result
// (LwM2M Core E.6 for /5, E.9 for /9).
var (
	ErrInvalidURI          = errors.New("invalid package URI")
	ErrUnsupportedProtocol = errors.New("package URI scheme not supported (coap and coaps are)")
)

// ErrNoCredentials: a coaps:// URI but the device has no PSK to dial with.
var ErrNoCredentials = errors.New("coaps Package URI but the device has no PSK")

// ParseURI checks a Package URI of at most maxLen bytes: coap:// or
// coaps:// with a host and nothing a device cannot send (user, fragment,
// opaque part). A known scheme the device does not speak is
// ErrUnsupportedProtocol, anything else unusable ErrInvalidURI. The default
// port of the scheme is filled in, so Host is always host:port.
func ParseURI(s string, maxLen int) (*url.URL, error) {
	if s == "" || len(s) > maxLen {
		return nil, ErrInvalidURI
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return nil, ErrInvalidURI
	}
	switch u.Scheme {
	case "coap", "coaps":
	case "http", "https", "coap+tcp", "coaps+tcp", "coap+ws", "coaps+ws":
		return nil, ErrUnsupportedProtocol
	default:
		return nil, ErrInvalidURI
	}
	if u.Hostname() == "" || u.Opaque != "" || u.User != nil || u.Fragment != "" {
		return nil, ErrInvalidURI
	}
	if u.Port() == "" {
		port := "5683"
		if u.Scheme == "coaps" {
			port = "5684"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

// SZXOf is the SZX of a block size from 16 to 1024.
func SZXOf(size int) (blockwise.SZX, error) {
	for szx := blockwise.SZX16; szx <= blockwise.SZX1024; szx++ {
		if int(szx.Size()) == size {
			return szx, nil
		}
	}
	return 0, fmt.Errorf("block size %d is not a power of two from 16 to 1024", size)
}

// Block is one Block2 answer.
type Block struct {
	Code    codes.Code
	Payload []byte
	SZX     blockwise.SZX // the server's block size (it may choose smaller)
	Num     int64
	More    bool
	ETag    []byte
	Size2   int64 // the resource's size when the server said, else -1
}

// Request is how one block is asked for.
type Request struct {
	// Shared says the conn is the client's session with its LwM2M server,
	// whose blockwise layer must be kept out of this loop (client.RawBlock2).
	Shared bool
	// Timeout bounds the exchange.
	Timeout time.Duration
	// NonConfirmable sends the request NON (no retransmission): a window
	// of pipelined requests repairs a lost one itself.
	NonConfirmable bool
}

// Get asks for block num of u's resource in blocks of szx.
func Get(ctx context.Context, conn *udpclient.Conn, u *url.URL, szx blockwise.SZX, num int64, r Request) (Block, error) {
	rctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	req, err := conn.NewGetRequest(rctx, path)
	if err != nil {
		return Block{}, fmt.Errorf("build GET %s: %w", u.Redacted(), err)
	}
	defer conn.ReleaseMessage(req)
	if u.RawQuery != "" {
		for _, q := range bytes.Split([]byte(u.RawQuery), []byte("&")) {
			if qs, err := url.QueryUnescape(string(q)); err == nil {
				req.AddOptionString(message.URIQuery, qs)
			}
		}
	}
	v, err := blockwise.EncodeBlockOption(szx, num, false)
	if err != nil {
		return Block{}, fmt.Errorf("block %d: %w", num, err)
	}
	req.SetOptionUint32(message.Block2, v)
	if r.NonConfirmable {
		req.SetType(message.NonConfirmable)
	}
	if r.Shared {
		client.RawBlock2(req)
	}
	resp, err := conn.Do(req)
	var b2 uint32
	var hasB2 bool
	if r.Shared {
		b2, hasB2 = client.TakeBlock2(req)
	}
	if err != nil {
		return Block{}, fmt.Errorf("GET %s block %d: %w", u.Redacted(), num, err)
	}
	defer conn.ReleaseMessage(resp)
	if hasB2 {
		resp.SetOptionUint32(message.Block2, b2)
	}
	b := Block{Code: resp.Code(), SZX: szx, Num: num, Size2: -1}
	if b.Code != codes.Content {
		return b, nil
	}
	if bv, err := resp.GetOptionUint32(message.Block2); err == nil {
		if b.SZX, b.Num, b.More, err = blockwise.DecodeBlockOption(bv); err != nil || b.SZX > blockwise.SZX1024 {
			return Block{}, fmt.Errorf("GET %s: bad Block2 option in the answer", u.Redacted())
		}
	} else if num != 0 {
		return Block{}, fmt.Errorf("GET %s block %d: answer without Block2", u.Redacted(), num)
	}
	if e, err := resp.ETag(); err == nil {
		b.ETag = append([]byte(nil), e...)
	}
	if s, err := resp.Options().GetUint32(message.Size2); err == nil {
		b.Size2 = int64(s)
	}
	if body := resp.Body(); body != nil {
		// One block: at most 1024 bytes (a whole small resource when the
		// server sent no Block2, bounded by the datagram).
		w := bytes.NewBuffer(make([]byte, 0, int(b.SZX.Size())))
		if _, err := w.ReadFrom(body); err != nil {
			return Block{}, fmt.Errorf("GET %s block %d: read: %w", u.Redacted(), num, err)
		}
		b.Payload = w.Bytes()
	}
	return b, nil
}

// Session is the device's session with its LwM2M server: the conn, and
// the scheme and host:port it reaches.
type Session func() (conn *udpclient.Conn, scheme, hostport string)

// Over returns session's conn when u names that server (same scheme and
// host:port): the package is then pulled over it, without a handshake of
// its own (LwM2M Core E.6 leaves the pull's transport to the device).
func Over(session Session, u *url.URL) (*udpclient.Conn, bool) {
	if session == nil {
		return nil, false
	}
	conn, scheme, hostport := session()
	if conn == nil || scheme != u.Scheme || hostport != u.Host {
		return nil, false
	}
	return conn, true
}

// Dialer is how a session of the download's own is opened.
type Dialer struct {
	// PSKIdentity and PSKKey are the device's credentials for coaps://.
	PSKIdentity string
	PSKKey      []byte
	// NSTART is the number of requests kept in flight (at least 1).
	NSTART int
	// AckTimeout is CoAP's ACK_TIMEOUT.
	AckTimeout time.Duration
	// HandshakeTimeout bounds the DTLS handshake.
	HandshakeTimeout time.Duration
	// FlightInterval, when above 0, is DTLS's retransmission interval.
	FlightInterval time.Duration
	// Errors, when set, hears go-coap's errors.
	Errors func(error)
}

// Dial opens a CoAP session to u's server: plain UDP for coap://,
// DTLS-PSK with the device's credentials for coaps://. go-coap's blockwise
// layer is off: the device runs its own Block2 loop.
func (d Dialer) Dial(ctx context.Context, u *url.URL) (*udpclient.Conn, error) {
	opts := []udp.Option{
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
		options.WithTransmission(uint32(max(d.NSTART, 1)), d.AckTimeout, 4),
		// NSTART is the limit; go-coap's own default is one request per
		// conn and path.
		options.WithLimitClientParallelRequest(0),
		options.WithLimitClientEndpointParallelRequest(0),
		options.WithMTU(8192),
	}
	if d.Errors != nil {
		opts = append(opts, options.WithErrors(d.Errors))
	}
	if u.Scheme == "coap" {
		conn, err := udp.Dial(u.Host, opts...)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", u.Host, err)
		}
		return conn, nil
	}
	if d.PSKIdentity == "" || len(d.PSKKey) == 0 {
		return nil, ErrNoCredentials
	}
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "udp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.Host, err)
	}
	key := d.PSKKey
	dopts := []piondtls.ClientOption{
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(d.PSKIdentity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8, piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CCM),
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
		piondtls.WithMTU(1400),
	}
	if d.FlightInterval > 0 {
		dopts = append(dopts, piondtls.WithFlightInterval(d.FlightInterval))
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(raw), raw.RemoteAddr(), dopts...)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("dtls client %s: %w", u.Host, err)
	}
	// pion's handshake is lazy (../shared/notes trap 1): do it now, bounded.
	hctx, cancel := context.WithTimeout(ctx, d.HandshakeTimeout)
	err = dc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("dtls handshake with %s: %w", u.Host, err)
	}
	return coapdtls.Client(dc, append(opts, options.WithCloseSocket())...), nil
}
