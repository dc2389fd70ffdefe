package firmware

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
)

var (
	testPSKID  = "dev-1"
	testPSKKey = []byte("0123456789abcdef")
)

// fileServer serves one package at /fw by Block2, with an ETag, on a real
// socket on 127.0.0.1 (coap or coaps with the test PSK). It answers in the
// block size asked for and records the block numbers requested.
type fileServer struct {
	t      testing.TB
	secure bool
	addr   string

	mu      sync.Mutex
	data    []byte
	etag    []byte
	reqs    []int64
	stallAt int64          // from this block on, do not answer (-1: never)
	corrupt map[int64]bool // flip a byte in these blocks
	stop    func()
}

func newFileServer(t testing.TB, secure bool, data []byte) *fileServer {
	s := &fileServer{t: t, secure: secure, data: data, etag: []byte("etag-1"), stallAt: -1, corrupt: map[int64]bool{}}
	s.start("127.0.0.1:0")
	t.Cleanup(s.shutdown)
	return s
}

func (s *fileServer) uri() string {
	if s.secure {
		return "coaps://" + s.addr + "/fw"
	}
	return "coap://" + s.addr + "/fw"
}

func (s *fileServer) start(addr string) {
	s.t.Helper()
	m := mux.HandlerFunc(s.serve)
	var err error
	for try := 0; try < 50; try++ { // the old socket may linger a moment after a restart
		if err = s.listen(addr, m); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatal(err)
}

func (s *fileServer) listen(addr string, m mux.Handler) error {
	bw := options.WithBlockwise(false, blockwise.SZX1024, time.Second) // the test answers blocks itself
	if !s.secure {
		l, err := coapnet.NewListenUDP("udp", addr)
		if err != nil {
			return err
		}
		srv := udp.NewServer(options.WithMux(m), bw)
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(l) }()
		s.addr = l.LocalAddr().String()
		s.stop = func() { srv.Stop(); _ = l.Close(); <-done }
		return nil
	}
	l, err := coapnet.NewDTLSListener("udp", addr, coapnet.NewDTLSServerOptions(
		piondtls.WithPSK(func(id []byte) ([]byte, error) {
			if string(id) != testPSKID {
				return nil, fmt.Errorf("unknown identity %q", id)
			}
			return testPSKKey, nil
		}),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	))
	if err != nil {
		return err
	}
	srv := dtls.NewServer(options.WithMux(m), options.WithMTU(8192), bw)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	s.addr = l.Addr().String()
	s.stop = func() { srv.Stop(); _ = l.Close(); <-done }
	return nil
}

func (s *fileServer) shutdown() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

func (s *fileServer) requests() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.reqs...)
}

func (s *fileServer) serve(w mux.ResponseWriter, r *mux.Message) {
	if r.Code() != codes.GET {
		return
	}
	if p, _ := r.Options().Path(); p != "/fw" {
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	szx, num := blockwise.SZX1024, int64(0)
	if v, err := r.GetOptionUint32(message.Block2); err == nil {
		szx, num, _, _ = blockwise.DecodeBlockOption(v)
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, num)
	if s.stallAt >= 0 && num >= s.stallAt {
		s.mu.Unlock()
		return // no answer: the device times out
	}
	data, etag, corrupt := s.data, s.etag, s.corrupt[num]
	s.mu.Unlock()
	size := szx.Size()
	off := num * size
	if off >= int64(len(data)) && !(off == 0 && len(data) == 0) {
		_ = w.SetResponse(codes.BadOption, message.TextPlain, nil)
		return
	}
	end := min(off+size, int64(len(data)))
	chunk := append([]byte(nil), data[off:end]...)
	if corrupt && len(chunk) > 0 {
		chunk[len(chunk)/2] ^= 0x20
	}
	more := end < int64(len(data))
	v, _ := blockwise.EncodeBlockOption(szx, num, more)
	_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(chunk))
	w.Message().SetOptionUint32(message.Block2, v)
	w.Message().SetOptionBytes(message.ETag, etag)
	w.Message().SetOptionUint32(message.Size2, uint32(len(data)))
}

// lossyConn is a net.PacketConn that drops and duplicates datagrams it
// sends, at random with fixed seeds: a bad radio link.
type lossyConn struct {
	net.PacketConn
	drop, dup float64
	mu        sync.Mutex
	r         *rand.Rand
	dropped   int
	dupped    int
}

func (c *lossyConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	x := c.r.Float64()
	drop, dup := x < c.drop, x >= c.drop && x < c.drop+c.dup
	if drop {
		c.dropped++
	}
	if dup {
		c.dupped++
	}
	c.mu.Unlock()
	if drop {
		return len(p), nil
	}
	if dup {
		if _, err := c.PacketConn.WriteTo(p, addr); err != nil {
			return 0, err
		}
	}
	return c.PacketConn.WriteTo(p, addr)
}

// lossyProxy relays UDP between one device and target through lossy
// sockets in both directions.
type lossyProxy struct {
	addr     string
	down, up *lossyConn
	wg       sync.WaitGroup
}

func newLossyProxy(t testing.TB, target string, drop, dup float64) *lossyProxy {
	t.Helper()
	dl, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{addr: dl.LocalAddr().String(),
		down: &lossyConn{PacketConn: dl, drop: drop, dup: dup, r: rand.New(rand.NewPCG(7, 8))},
		up:   &lossyConn{PacketConn: ul, drop: drop, dup: dup, r: rand.New(rand.NewPCG(9, 10))}}
	var mu sync.Mutex
	var device net.Addr
	p.wg.Add(2)
	go func() { // device -> target
		defer p.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := p.down.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			device = from
			mu.Unlock()
			_, _ = p.up.WriteTo(buf[:n], taddr)
		}
	}()
	go func() { // target -> device
		defer p.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, _, err := p.up.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			to := device
			mu.Unlock()
			if to != nil {
				_, _ = p.down.WriteTo(buf[:n], to)
			}
		}
	}()
	t.Cleanup(func() { _ = dl.Close(); _ = ul.Close(); p.wg.Wait() })
	return p
}
