package firmware

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotastack/fota/client/blockpull"
	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// lwm2mServer is the smallest LwM2M server a push test needs: the
// registration interface over DTLS-PSK on 127.0.0.1, keeping each
// registration's connection so the test can send device-management
// requests to the device (go-coap client acting as server).
type lwm2mServer struct {
	t    testing.TB
	addr string
	regs chan *udpclient.Conn // a connection per Register

	mu   sync.Mutex
	next int
}

// newLwM2MServer starts the server; goBlockwise turns go-coap's own
// Block1 sender on for requests the test sends (else the test sends
// blocks itself).
func newLwM2MServer(t testing.TB, goBlockwise bool, opts ...dtlsServerOption) *lwm2mServer {
	t.Helper()
	s := &lwm2mServer{t: t, regs: make(chan *udpclient.Conn, 10)}
	l, err := coapnet.NewDTLSListener("udp", "127.0.0.1:0", coapnet.NewDTLSServerOptions(
		piondtls.WithPSK(func(id []byte) ([]byte, error) {
			if string(id) != testPSKID {
				return nil, fmt.Errorf("unknown identity %q", id)
			}
			return testPSKKey, nil
		}),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	))
	if err != nil {
		t.Fatal(err)
	}
	so := append([]dtlsServerOption{options.WithMux(mux.HandlerFunc(s.serve)), options.WithMTU(8192),
		options.WithBlockwise(goBlockwise, blockwise.SZX512, time.Minute)}, opts...)
	srv := dtls.NewServer(so...)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); _ = l.Close(); <-done })
	s.addr = l.Addr().String()
	return s
}

type dtlsServerOption = dtlsserver.Option

func (s *lwm2mServer) serve(w mux.ResponseWriter, r *mux.Message) {
	path, _ := r.Options().Path()
	if r.Body() != nil {
		_, _ = io.Copy(io.Discard, r.Body())
	}
	switch {
	case r.Code() == codes.POST && path == "/rd":
		s.mu.Lock()
		s.next++
		id := fmt.Sprintf("r%d", s.next)
		s.mu.Unlock()
		_ = w.SetResponse(codes.Created, message.TextPlain, nil,
			message.Option{ID: message.LocationPath, Value: []byte("rd")}, message.Option{ID: message.LocationPath, Value: []byte(id)})
		s.regs <- w.Conn().(*udpclient.Conn)
	case r.Code() == codes.POST && strings.HasPrefix(path, "/rd/"):
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case r.Code() == codes.DELETE && strings.HasPrefix(path, "/rd/"):
		_ = w.SetResponse(codes.Deleted, message.TextPlain, nil)
	default:
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
	}
}

// registration waits for the next Register and returns its connection.
func (s *lwm2mServer) registration(within time.Duration) *udpclient.Conn {
	s.t.Helper()
	select {
	case c := <-s.regs:
		return c
	case <-time.After(within):
		s.t.Fatalf("no registration within %v", within)
		return nil
	}
}

// read GETs a resource of the device as text.
func read(t testing.TB, conn *udpclient.Conn, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := conn.Get(ctx, path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer conn.ReleaseMessage(resp)
	if resp.Code() != codes.Content {
		t.Fatalf("GET %s: %v", path, resp.Code())
	}
	b, _ := resp.ReadBody()
	return string(b)
}

// execute POSTs to an executable resource.
func execute(t testing.TB, conn *udpclient.Conn, path string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := conn.Post(ctx, path, message.TextPlain, nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer conn.ReleaseMessage(resp)
	return resp.Code()
}

// putBlock sends one Block1 block of pkg to /5/0/0 and returns the
// answer's code and Block1 option.
func putBlock(t testing.TB, conn *udpclient.Conn, pkg []byte, size int, num int64) (codes.Code, int64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	off := num * int64(size)
	end := min(off+int64(size), int64(len(pkg)))
	req, err := conn.NewPutRequest(ctx, "/5/0/0", message.AppOctets, bytes.NewReader(pkg[off:end]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.ReleaseMessage(req)
	szx, _ := blockpull.SZXOf(size)
	v, _ := blockwise.EncodeBlockOption(szx, num, end < int64(len(pkg)))
	req.SetOptionUint32(message.Block1, v)
	if num == 0 {
		req.SetOptionUint32(message.Size1, uint32(len(pkg)))
	}
	resp, err := conn.Do(req)
	if err != nil {
		t.Fatalf("PUT block %d: %v", num, err)
	}
	defer conn.ReleaseMessage(resp)
	bv, err := resp.GetOptionUint32(message.Block1)
	if err != nil {
		return resp.Code(), -1, false
	}
	_, n, more, _ := blockwise.DecodeBlockOption(bv)
	return resp.Code(), n, more
}
