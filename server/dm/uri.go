package dm

import (
	"errors"
	"net"
)

// ListenerURI is scheme://host:port of the listener at addr as devices
// reach it: host is publicHost when given, else the listener's own address
// (127.0.0.1 for a wildcard one). "" when addr is nil or not host:port.
func ListenerURI(scheme string, addr net.Addr, publicHost string) string {
	if addr == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	if publicHost != "" {
		host = publicHost
	} else if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// URIFor is the URI of path (a server resource such as a package, "/fw/ID")
// on the listener device ep registered over, so that it fetches it with the
// credentials it already has: coaps for a DTLS registration, coap otherwise.
func (s *Server) URIFor(ep, publicHost, path string) (string, error) {
	dev := s.Device(ep)
	if dev == nil {
		return "", ErrUnknownDevice
	}
	scheme, addr := "coap", s.CoAPAddr()
	if dev.Registration().Transport == "coaps" {
		scheme, addr = "coaps", s.CoAPSAddr()
	}
	base := ListenerURI(scheme, addr, publicHost)
	if base == "" {
		return "", errors.New("no " + scheme + " listener for the package URI")
	}
	return base + path, nil
}
