// Package transport carries CoAP for the LwM2M servers: plain CoAP over UDP
// (go-coap's UDP server) and CoAP over DTLS 1.2, where our own UDP
// demultiplexer sits in front of pion/dtls so that the session layer is
// ours: routing by address and by Connection ID (RFC 9146), a fresh
// association for a new ClientHello from a known address (RFC 6347
// 4.2.8), tolerance of old record-layer versions, session lifetime tied
// to the registration instead of an idle timeout, and a rate limit on
// handshakes.
//
// Idle DTLS sessions can hibernate (DTLSConfig.HibernateAfter,
// hibernate.go): the pion session state is serialized into a record of
// about 600 bytes, the pion and go-coap connections and their goroutines
// end, and the next datagram for the address or Connection ID, or a
// request the server sends through Session.Use, resumes the session
// without a handshake. That keeps an idle device at a few KiB instead of
// the ~48 KiB of a live go-coap DTLS session (issue 8).
//
// A listener serves one mux.Handler; every request's context carries the
// Session it arrived on (SessionFrom), so that a router can check who is
// speaking and keep the session to send requests back later.
package transport
