package server_test

import (
	"context"
	"errors"
	"math/rand"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/servertest"
)

// Garbage on both UDP ports (random bytes, truncated CoAP headers, a CoAP
// message with a broken option, a DTLS record header with a huge length)
// crashes nothing and leaves the server serving.
func TestMalformedDatagramsAreIgnored(t *testing.T) {
	srv := servertest.Start(t)
	rng := rand.New(rand.NewSource(1))
	junk := [][]byte{
		{0x40},                         // truncated CoAP header
		{0x44, 0x02, 0x00, 0x01, 0xff}, // token length 4 but none
		{0x40, 0x02, 0x00, 0x01, 0xdd}, // option delta 13 without its extension byte
		{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1},                // DTLS header claiming 65535 bytes
		{0x19, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0}, // CID record, unknown CID
	}
	for i := 0; i < 200; i++ {
		b := make([]byte, rng.Intn(1500))
		rng.Read(b)
		junk = append(junk, b)
	}
	for _, addr := range []net.Addr{srv.CoAPAddr(), srv.CoAPSAddr()} {
		c, err := net.Dial("udp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range junk {
			_, _ = c.Write(j)
		}
		c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	connect(t, srv, "coap", "after-junk-plain")
	connect(t, srv, "coaps", "after-junk-dtls")
}

// The queue of a sleeping device is bounded: once full, more requests fail
// at once with ErrQueueFull (HTTP 503) instead of piling up.
func TestQueueIsBounded(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) {
		c.QueueAwake = 50 * time.Millisecond
		c.QueueSize = 2
	})
	d := newTestDevice(t, "sleeper").dialPlain(srv.CoAPAddr())
	if r := d.register("Q"); r.Code != codes.Created {
		t.Fatal(r.Code)
	}
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		go func() { _, _ = srv.Read(ctx, "sleeper", "/3/0/0", nil) }()
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := srv.Read(ctx, "sleeper", "/3/0/0", nil); !errors.Is(err, dm.ErrQueueFull) {
		t.Fatalf("third queued request: %v, want ErrQueueFull", err)
	}
	var r map[string]any
	if code := srv.API("GET", "/api/clients/sleeper/3/0/0", nil, &r); code != 503 {
		t.Fatalf("HTTP %d %v, want 503", code, r)
	}
}

// RFC 7641 3.6: a NON notification whose observation the server does not
// hold is answered with a Reset, so that the device stops sending it; a
// CON one gets a well-formed empty ACK (go-coap cannot send a Reset for it).
func TestUnknownNotificationIsRejected(t *testing.T) {
	srv := servertest.Start(t)
	c, err := net.Dial("udp", srv.CoAPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name     string
		first    byte // version 1, type, token length 3
		mid      byte
		wantType byte
	}{
		{"NON gets Reset", 0x53, 0x34, 3},
		{"CON gets empty ACK", 0x43, 0x35, 2},
	} {
		// 2.05, message ID 0x12xx, token 01 02 03, Observe 5.
		msg := []byte{tc.first, 0x45, 0x12, tc.mid, 1, 2, 3, 0x61, 0x05}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s: no answer: %v", tc.name, err)
		}
		// An empty message is exactly 4 bytes: no token, code 0.00.
		if n != 4 || buf[0]>>4&3 != tc.wantType || buf[0]&0x0f != 0 || buf[1] != 0 || buf[2] != 0x12 || buf[3] != tc.mid {
			t.Fatalf("%s: answer % x", tc.name, buf[:n])
		}
	}
}
