// Package fleet runs many simulated LwM2M devices in one process: each a
// real client (package client) with its own UDP socket and DTLS session,
// started at a given rate, optionally behind a simulated cellular link
// (package linksim) through a per-device relay, so that latency, loss and
// NAT rebinding apply to the device's real datagrams.
package fleet
