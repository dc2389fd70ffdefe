package transport

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// A device's repeated confirmable request (same message ID) counts as a
// received retransmission and gets the same answer; a request of the
// server that the device does not acknowledge is sent again after
// ACK_TIMEOUT and counts as a sent one. Real DTLS on 127.0.0.1; the
// device side is a bare pion connection so that the test, not a CoAP
// library, decides what is repeated and what goes unanswered.
func TestRetransmissionsCounted(t *testing.T) {
	d, err := ListenDTLS("127.0.0.1:0", DTLSConfig{
		Handler: mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) {
			_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte("hello")))
		}),
		PSK: func([]byte) ([]byte, error) { return pskKey, nil },
		Transmission: func(string) (Transmission, bool) {
			return Transmission{ACKTimeout: 300 * time.Millisecond, MaxRetransmit: 4}, true
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dialPSK(pc, d.Addr(), "retx-dev")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	read := func(wait time.Duration) []byte {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			return nil
		}
		return buf[:n]
	}
	// A first datagram may reach the server before its side of the
	// session is up, and be lost: the device tries GETs with new message
	// IDs (not retransmissions) until one is answered.
	for mid := byte(0); ; mid++ {
		if mid == 20 {
			t.Fatal("no GET answered")
		}
		if _, err := conn.Write([]byte{0x41, 0x01, 0x10, mid, 0xAB, 0xB2, 'i', 'd'}); err != nil {
			t.Fatal(err)
		}
		if a := read(500 * time.Millisecond); len(a) >= 4 && a[2] == 0x10 && a[3] == mid {
			break
		}
	}
	for read(100*time.Millisecond) != nil { // late answers to the tries
	}

	// CON GET /id, token 0xAA, message ID 0x1234, sent twice.
	get := []byte{0x41, 0x01, 0x12, 0x34, 0xAA, 0xB2, 'i', 'd'}
	for i := 0; i < 2; i++ {
		if _, err := conn.Write(get); err != nil {
			t.Fatal(err)
		}
		ack := read(5 * time.Second)
		if len(ack) < 4 || ack[0]>>4&3 != 2 || ack[1] != byte(codes.Content) || ack[2] != 0x12 || ack[3] != 0x34 {
			t.Fatalf("answer %d to the GET: % x", i, ack)
		}
	}
	if st := d.Retransmissions(); st.Received != 1 || st.Sent != 0 {
		t.Fatalf("after a repeated GET: %+v, want 1 received", st)
	}

	// The server asks the device; the device lets the first copy go
	// unanswered and acknowledges the second.
	sessions := d.Sessions()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions", len(sessions))
	}
	cc, done, err := sessions[0].Use(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	answered := make(chan error, 1)
	go func() {
		_, err := cc.Get(ctx, "/3/0/0")
		answered <- err
	}()
	first := read(5 * time.Second)
	if len(first) < 4 || first[0]>>4&3 != 0 {
		t.Fatalf("the server's request is not confirmable: % x", first)
	}
	again := read(5 * time.Second)
	if !bytes.Equal(first, again) {
		t.Fatalf("second datagram is not the retransmission:\n% x\n% x", first, again)
	}
	tkl := int(first[0] & 0x0f)
	ack := append([]byte{0x60 | byte(tkl), byte(codes.Content), first[2], first[3]}, first[4:4+tkl]...)
	ack = append(ack, 0xff, 'F', 'o', 't', 'a')
	if _, err := conn.Write(ack); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatalf("the server's GET: %v", err)
	}
	if st := d.Retransmissions(); st.Sent < 1 || st.Received != 1 {
		t.Fatalf("after one unanswered request: %+v, want sent >= 1", st)
	}
}
