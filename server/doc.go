// Package server is the LwM2M server: the registration interface (LwM2M
// Core 6.2), device management and information reporting over each
// device's own CoAP or DTLS session (6.3, 6.4), observations that survive
// restarts, the security store check of endpoint against DTLS identity, and
// a JSON HTTP API in the shape of Leshan's server demo. The bootstrap
// server, the firmware repository and campaigns live beside it and reuse
// its transport (server/transport), store (server/store), CoAP Router and
// HTTP mux.
//
// Start a server with Start(Config); tests use servertest.Start, which runs
// one on 127.0.0.1 with a temporary database. doc/server.md describes the
// layout and the API with curl examples.
package server
