package fleet

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/fotastack/fota/client/linksim"
)

// relay puts a simulated link between one device and the server: the
// device talks to front (plain loopback UDP), the relay forwards through a
// linksim socket, whose impairments and NAT rebindings the server sees.
type relay struct {
	front  *net.UDPConn
	link   *linksim.PacketConn
	server net.Addr
	device atomic.Pointer[net.UDPAddr]
	wg     sync.WaitGroup
}

func newRelay(local net.IP, server net.Addr, p linksim.Profile, seed uint64) (*relay, error) {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: local})
	if err != nil {
		return nil, err
	}
	link, err := linksim.Listen(local, p, seed)
	if err != nil {
		front.Close()
		return nil, err
	}
	r := &relay{front: front, link: link, server: server}
	r.wg.Add(2)
	go r.up()
	go r.down()
	return r, nil
}

// Addr is where the device sends.
func (r *relay) Addr() net.Addr { return r.front.LocalAddr() }

func (r *relay) up() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := r.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.device.Store(from)
		_, _ = r.link.WriteTo(buf[:n], r.server)
	}
}

func (r *relay) down() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := r.link.ReadFrom(buf)
		if err != nil {
			return
		}
		if d := r.device.Load(); d != nil {
			_, _ = r.front.WriteToUDP(buf[:n], d)
		}
	}
}

// rebinds is the number of NAT rebindings the link made.
func (r *relay) rebinds() int { n, _ := r.link.Stats(); return n }

func (r *relay) Close() {
	r.front.Close()
	r.link.Close()
	r.wg.Wait()
}
