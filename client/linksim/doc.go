// Package linksim simulates the radio link of a cellular IoT device under
// a UDP socket: latency and jitter, loss, duplication, reordering, a rate
// limit per direction (token bucket), an MTU, and NAT rebinding (the
// source port changes after an idle period, as carrier NATs do). Named
// profiles (lan, lte-m, nb-iot) carry figures from published NB-IoT and
// LTE-M measurements (profile.go). A seed makes every draw reproducible.
//
// The link is per device: it does not model a shared cell's capacity.
package linksim
