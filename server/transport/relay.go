package transport

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
)

// Record routing in a cluster (server/cluster). Every Connection ID this
// listener hands out starts with the node's number (2 bytes, big endian),
// followed by 6 random bytes: a node that receives a CID record it has no
// association for reads the owner from the CID alone, without a lookup, and
// hands the datagram to the cluster (Foreign), which relays it to the
// owner. The owner injects it as if it came from a relay address
// (RelayAddr: the forwarding node and the device's address folded into an
// IPv6 address of a private prefix), so pion moves the session there once
// the record authenticates; what the owner sends to that address goes to
// Relay, which sends it back to the forwarding node, and that node sends it
// from its own socket to the device. The device sees one server address
// throughout, as it must (its NAT and the balancer in front saw the
// datagram go to that node).

// ClusterRouting are the hooks of a cluster node; zero: a single server.
type ClusterRouting struct {
	// NodeNo is carried by every Connection ID (1..65535; 0: off).
	NodeNo uint16
	// Foreign receives a CID record whose CID names another node; b is the
	// listener's copy, from the device's address (as this node sees it).
	Foreign func(node uint16, b []byte, from netip.AddrPort)
	// Relay sends a record to a device that reaches this node through
	// node's front (a peer at a RelayAddr).
	Relay func(node uint16, to netip.AddrPort, b []byte) error
}

// relayPrefix marks relay addresses: a unique local IPv6 prefix
// (fd66:6f74:6100::/40, "fota") no device is ever reached at directly.
var relayPrefix = [5]byte{0xfd, 0x66, 0x6f, 0x74, 0x61}

// RelayAddr is the address a relayed device appears at on its owner: the
// forwarding node's number and the device's IPv4 address and port.
func RelayAddr(node uint16, device netip.AddrPort) (netip.AddrPort, error) {
	ip := device.Addr().Unmap()
	if !ip.Is4() {
		return netip.AddrPort{}, errors.New("relay: only IPv4 device addresses can be relayed")
	}
	var b [16]byte
	copy(b[:5], relayPrefix[:])
	binary.BigEndian.PutUint16(b[6:8], node)
	v4 := ip.As4()
	copy(b[12:], v4[:])
	return netip.AddrPortFrom(netip.AddrFrom16(b), device.Port()), nil
}

// RelayOf reverses RelayAddr.
func RelayOf(a netip.AddrPort) (node uint16, device netip.AddrPort, ok bool) {
	b := a.Addr().As16()
	if !a.Addr().Is6() || [5]byte(b[:5]) != relayPrefix {
		return 0, netip.AddrPort{}, false
	}
	return binary.BigEndian.Uint16(b[6:8]), netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:])), a.Port()), true
}

func relayTarget(addr net.Addr) (uint16, netip.AddrPort, bool) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, netip.AddrPort{}, false
	}
	return RelayOf(ua.AddrPort())
}

func putCIDNode(cid []byte, no uint16) { binary.BigEndian.PutUint16(cid, no) }

// CIDNode is the node number a Connection ID of ours carries.
func CIDNode(cid []byte) uint16 {
	if len(cid) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(cid)
}

// foreignNode reports the node a CID names when it is another node's: the
// cluster relays such records (Foreign, which must not block: the read
// loop calls it). One of ours without an association (gone with a
// restart) is dropped as any stale record.
func (d *DTLS) foreignNode(cid []byte) (uint16, bool) {
	c := d.cfg.Cluster
	if c.NodeNo == 0 || c.Foreign == nil {
		return 0, false
	}
	node := CIDNode(cid)
	return node, node != c.NodeNo
}

// Inject routes a datagram as if it had arrived at the listener's socket
// from from (a record another node relayed, from a RelayAddr).
func (d *DTLS) Inject(b []byte, from netip.AddrPort) {
	if len(b) < recordHeaderLen || len(b) > maxDatagram {
		return
	}
	d.route(b, from)
}

// SendTo sends a datagram from the listener's socket (a record the owner of
// a session relayed back, for the device this node's front received it
// from).
func (d *DTLS) SendTo(b []byte, to netip.AddrPort) error {
	_, err := d.pc.WriteToUDPAddrPort(b, to)
	return err
}
