// Package server wires the LwM2M server together from its parts, each a
// package of its own under server/:
//
//	transport  DTLS and UDP listeners, sessions, hibernation (go-coap, pion)
//	coapmux    CoAP routing by method and path
//	dm         device management: registration, requests, queue mode, observations
//	firmware   the firmware repository, signed packages, Block2 download
//	campaign   update campaigns, wave by wave, per-device state machine
//	bootstrap  the bootstrap server
//	events     the event bus (SSE, campaigns)
//	api        the HTTP API over all of them
//	store      the durable records and their interfaces; store/bolt the
//	           default backend; store/storetest the conformance suite
//
// Start(Config) starts them in order and Close stops them; tests use
// servertest.Start, which runs one on 127.0.0.1 with a temporary database.
// doc/server.md describes the API with curl examples.
package server
