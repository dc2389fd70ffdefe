package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// mtu is the receive buffer size of our CoAP session. go-coap's default
// (1472) kills a DTLS session when a bigger datagram arrives
// (../shared/notes trap 5); IPv4 UDP can carry up to 64 KiB, and servers
// sending 1024-byte blocks plus options and DTLS overhead stay well below.
const mtu = 8192

// target is a parsed server URI: coap://host:port or coaps://host:port.
type target struct {
	secure bool
	addr   string // host:port
}

// parseServerURI reads a server URI (LwM2M Core 6.1: the Security object's
// Server URI). The CoAP default ports 5683/5684 apply when none is given.
func parseServerURI(s string) (target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("server URI %q: %w", s, err)
	}
	var t target
	port := ""
	switch u.Scheme {
	case "coap":
		port = "5683"
	case "coaps":
		t.secure, port = true, "5684"
	default:
		return target{}, fmt.Errorf("server URI %q: scheme must be coap or coaps", s)
	}
	if u.Hostname() == "" {
		return target{}, fmt.Errorf("server URI %q: no host", s)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	return t, nil
}

// dial opens one CoAP session to the server: plain UDP or DTLS. Requests
// the server sends on this session are served by h, which is how LwM2M
// device management reaches the device (LwM2M Core 8.1: the server uses
// the address and session the device registered from). local, when set,
// is the local address to bind: a queue-mode device waking up keeps its
// address so that the server's observations, keyed by it, still match.
func (c *Client) dial(ctx context.Context, t target, h mux.Handler, local *net.UDPAddr) (*udpclient.Conn, error) {
	_, cfg := c.account()
	d := net.Dialer{Timeout: c.cfg.RequestTimeout}
	if local == nil && c.cfg.LocalIP != nil {
		local = &net.UDPAddr{IP: c.cfg.LocalIP}
	}
	if local != nil {
		d.LocalAddr = local
	}
	// go-coap's default periodic runner (expiry checks of a session)
	// sleeps 4 s between runs and only notices a closed session then;
	// ours ends with the session, so Stop leaves no goroutine behind.
	closed := make(chan struct{})
	var closeOnce sync.Once
	// go-coap retransmits a confirmable request from this runner too: it
	// must run often enough for ACK_TIMEOUT to hold (a 1 s tick would
	// turn a 200 ms ACK_TIMEOUT into 1 s).
	period := time.Second
	if ack := c.cfg.AckTimeout; ack > 0 && ack/2 < period {
		period = max(ack/2, 10*time.Millisecond)
	}
	opts := []udp.Option{
		options.WithPeriodicRunner(func(f func(time.Time) bool) {
			go func() {
				t := time.NewTicker(period)
				defer t.Stop()
				for {
					select {
					case <-closed:
						return
					case now := <-t.C:
						if !f(now) {
							return
						}
					}
				}
			}()
		}),
		// RFC 7641 3.6: a server that answers a notification with Reset
		// no longer wants it. go-coap hides Resets from handlers, so we
		// look at every incoming message here first.
		options.WithRequestMonitor(udpclient.RequestMonitorFunc(func(_ *udpclient.Conn, req *pool.Message) (bool, error) {
			if req.Type() == message.Reset {
				c.noteReset(req.MessageID())
			}
			return false, nil
		})),
		options.WithMux(h),
		options.WithContext(c.runCtx),
		options.WithMTU(mtu),
		// A whole blockwise transfer must fit in this time (trap 3); the
		// default of 3 s fails at NB-IoT round trips.
		options.WithBlockwise(true, blockwise.SZX1024, 2*time.Minute),
		options.WithErrors(func(err error) { c.log.Debug("coap", "err", err) }),
		c.rawBlock1Option(), // rawblock.go: Block1 to RawHandlers block by block
		// go-coap also allows one request in flight per conn and per
		// path by default, whatever NSTART says; NSTART (1 unless a
		// firmware pull's window raises it) is the limit we mean.
		options.WithLimitClientParallelRequest(0),
		options.WithLimitClientEndpointParallelRequest(0),
	}
	if tr := c.cfg.transmission(); tr != nil {
		opts = append(opts, tr)
	}
	onClose := func(conn *udpclient.Conn) *udpclient.Conn {
		conn.AddOnClose(func() { closeOnce.Do(func() { close(closed) }) })
		return conn
	}
	if !t.secure {
		conn, err := udp.Dial(t.addr, append(opts, options.WithDialer(&d))...)
		if err != nil {
			closeOnce.Do(func() { close(closed) })
			return nil, fmt.Errorf("dial %s: %w", t.addr, err)
		}
		return onClose(conn), nil
	}
	dopts, err := dtlsOptions(cfg)
	if err != nil {
		return nil, err
	}
	if c.cfg.FlightInterval > 0 {
		dopts = append(dopts, piondtls.WithFlightInterval(c.cfg.FlightInterval))
	}
	dopts = append(dopts, piondtls.WithSessionStore(&c.sessions))
	raw, err := d.DialContext(ctx, "udp", t.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t.addr, err)
	}
	watch := &handshakeWatch{PacketConn: dtlsnet.PacketConnFromConn(raw)}
	dc, err := piondtls.ClientWithOptions(watch, raw.RemoteAddr(), dopts...)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("dtls client %s: %w", t.addr, err)
	}
	// pion's handshake is lazy: without this, a wrong key only shows as a
	// request that hangs past its deadline (../shared/notes trap 1).
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	err = dc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("dtls handshake with %s: %s: %w", t.addr, watch.explain(c.cfg), err)
	}
	opts = append(opts, options.WithCloseSocket())
	return onClose(coapdtls.Client(dc, opts...)), nil
}

// dtlsOptions builds the pion options: PSK (LwM2M Core 7.1.1 mandates
// TLS_PSK_WITH_AES_128_CCM_8) or X.509 certificates, and Connection ID
// (RFC 9146) so that a NAT rebinding keeps the session.
func dtlsOptions(cfg Config) ([]piondtls.ClientOption, error) {
	opts := []piondtls.ClientOption{
		piondtls.WithExtendedMasterSecret(piondtls.RequestExtendedMasterSecret),
		// We only send the server's CID: a client has a socket of its own
		// and needs no demultiplexing, so it asks for none in return.
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()),
		piondtls.WithMTU(1400),
	}
	switch {
	case cfg.Certificate != nil:
		opts = append(opts,
			piondtls.WithCertificates(*cfg.Certificate),
			piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
		)
		if cfg.RootCAs != nil {
			opts = append(opts, piondtls.WithRootCAs(cfg.RootCAs))
		} else {
			opts = append(opts, piondtls.WithInsecureSkipVerify(cfg.InsecureSkipVerify))
		}
		if cfg.ServerName != "" {
			opts = append(opts, piondtls.WithServerName(cfg.ServerName))
		}
	case cfg.PSKIdentity != "":
		if len(cfg.PSKKey) == 0 {
			return nil, fmt.Errorf("dtls: PSK identity %q has no key", cfg.PSKIdentity)
		}
		key := append([]byte(nil), cfg.PSKKey...)
		opts = append(opts,
			piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
			// pion names the identity the client sends "identity hint".
			piondtls.WithPSKIdentityHint([]byte(cfg.PSKIdentity)),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8,
				piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256, piondtls.TLS_PSK_WITH_AES_128_CCM),
		)
	default:
		return nil, fmt.Errorf("dtls: coaps server needs a PSK identity and key or a certificate")
	}
	return opts, nil
}

// TransmissionOptions are the timers of the device's link to its server,
// to be raised on slow links. They are part of Config.
type TransmissionOptions struct {
	// FlightInterval is how long the DTLS handshake waits for the peer's
	// next flight before it retransmits its own (RFC 6347 4.2.4.1; pion's
	// default is 1 s). It must exceed the round trip: at NB-IoT round trips
	// of 2 to 3 s, the 1 s default resends every flight two or three times
	// over a link of a few kbit/s. 0 keeps pion's default.
	FlightInterval time.Duration
	// AckTimeout and MaxRetransmit are CoAP's ACK_TIMEOUT and
	// MAX_RETRANSMIT for confirmable requests (RFC 7252 4.8; defaults 2 s
	// and 4). An ACK_TIMEOUT below the round trip retransmits every request
	// at least once. NSTART stays 1. 0 keeps the default.
	AckTimeout    time.Duration
	MaxRetransmit int
}

// transmission is the go-coap option for AckTimeout and MaxRetransmit, or
// nil when both are defaults.
func (t TransmissionOptions) transmission() udp.Option {
	if t.AckTimeout <= 0 && t.MaxRetransmit <= 0 {
		return nil
	}
	ack, retx := t.AckTimeout, t.MaxRetransmit
	if ack <= 0 {
		ack = 2 * time.Second // RFC 7252 4.8 default
	}
	if retx <= 0 {
		retx = 4
	}
	return options.WithTransmission(1, ack, uint32(retx))
}

// certificateOptions is the X.509 part of Config, kept together.
type certificateOptions struct {
	// Certificate is the device certificate and key (mode 2, X.509).
	Certificate *tls.Certificate
	// RootCAs verifies the server's certificate; nil with
	// InsecureSkipVerify accepts any (tests only).
	RootCAs            *x509.CertPool
	InsecureSkipVerify bool
	ServerName         string
}

// handshakeWatch sees the datagrams of a DTLS client's socket, so that a
// failed handshake can be explained: pion reports a wrong key as a timeout
// and an unknown identity as an alert it cannot name.
type handshakeWatch struct {
	net.PacketConn
	received atomic.Int64
	alert    atomic.Int32 // description of the last plaintext alert, or 0
}

func (w *handshakeWatch) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := w.PacketConn.ReadFrom(p)
	if n > 0 {
		w.received.Add(1)
		// A plaintext (epoch 0) alert record: type 21, 13-byte header,
		// level and description.
		if n >= 15 && p[0] == 21 && p[3] == 0 && p[4] == 0 {
			w.alert.Store(int32(p[14]))
		}
	}
	return n, a, err
}

// explain says what a failed handshake most likely means, for the person
// who configured the device.
func (w *handshakeWatch) explain(cfg Config) string {
	id := string(cfg.PSKIdentity)
	switch a := w.alert.Load(); {
	case a == 115:
		return fmt.Sprintf("the server does not know PSK identity %q (unknown_psk_identity): check the identity, and that the server's security store has it", id)
	case a == 80 && cfg.Certificate == nil:
		return fmt.Sprintf("the server refused the handshake (internal_error; a server that does not know PSK identity %q answers so)", id)
	case a != 0:
		return fmt.Sprintf("the server refused the handshake (TLS alert %d)", a)
	case w.received.Load() == 0:
		return "no answer at all: is a DTLS server listening at this address?"
	case cfg.Certificate == nil:
		return fmt.Sprintf("the server answered but the handshake did not finish: most likely a wrong PSK key for identity %q (a server drops a Finished message it cannot verify)", id)
	}
	return "the server answered but the handshake did not finish: check the certificates on both sides"
}

// sessionMemory keeps the DTLS session (ID and master secret) of each
// server the client talked to, for session resumption (RFC 5246 7.3) when
// it connects again: after a reboot (Reboot) or a lost session, an
// abbreviated handshake costs one round trip and no key exchange. It
// belongs to the Client, so it survives Stop and Start, as a device keeps
// the session in flash across a reboot. A server that does not know the
// session ID answers with a full handshake.
type sessionMemory struct {
	mu sync.Mutex
	m  map[string]piondtls.Session
}

func (s *sessionMemory) Set(key []byte, sess piondtls.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]piondtls.Session{}
	}
	if len(s.m) >= 16 { // one server, or a few after a bootstrap: bounded anyway
		clear(s.m)
	}
	s.m[string(key)] = sess
	return nil
}

func (s *sessionMemory) Get(key []byte) (piondtls.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[string(key)], nil
}

func (s *sessionMemory) Del(key []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, string(key))
	return nil
}
