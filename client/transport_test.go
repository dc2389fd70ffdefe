package client

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// gaps starts a client against a UDP socket that never answers and
// returns the times between the first n datagrams it receives: the
// retransmissions of the first Register (coap) or ClientHello (coaps).
func gaps(t *testing.T, scheme string, tr TransmissionOptions, n int) []time.Duration {
	t.Helper()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cfg := Config{Endpoint: "tr", ServerURI: scheme + "://" + sink.LocalAddr().String(), PSKIdentity: "tr", PSKKey: []byte("0123456789abcdef"),
		HandshakeTimeout: 10 * time.Second, RequestTimeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.TransmissionOptions = tr
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	buf := make([]byte, 2048)
	var at []time.Time
	_ = sink.SetReadDeadline(time.Now().Add(8 * time.Second))
	for len(at) < n {
		if _, _, err := sink.ReadFromUDP(buf); err != nil {
			t.Fatalf("%s: %d datagrams before %v", scheme, len(at), err)
		}
		at = append(at, time.Now())
	}
	out := make([]time.Duration, n-1)
	for i := range out {
		out[i] = at[i+1].Sub(at[i])
	}
	return out
}

// AckTimeout sets CoAP's ACK_TIMEOUT: the first retransmission of a
// confirmable request comes after ACK_TIMEOUT × [1, 1.5] (RFC 7252
// 4.2), the second after twice that.
func TestAckTimeoutSetsRetransmissionTimer(t *testing.T) {
	g := gaps(t, "coap", TransmissionOptions{AckTimeout: 200 * time.Millisecond}, 3)
	if g[0] < 180*time.Millisecond || g[0] > 400*time.Millisecond {
		t.Errorf("first retransmission after %v, want 200-300 ms", g[0])
	}
	if g[1] < 360*time.Millisecond || g[1] > 800*time.Millisecond {
		t.Errorf("second retransmission after %v, want 400-600 ms", g[1])
	}
}

// FlightInterval sets the DTLS handshake's retransmission timer: the
// ClientHello is resent after it, not after pion's 1 s default.
func TestFlightIntervalSetsHandshakeRetransmission(t *testing.T) {
	g := gaps(t, "coaps", TransmissionOptions{FlightInterval: 2500 * time.Millisecond}, 2)
	if g[0] < 2400*time.Millisecond || g[0] > 3500*time.Millisecond {
		t.Errorf("ClientHello resent after %v, want about 2.5 s", g[0])
	}
}
