// Package client is an LwM2M 1.1 device client: the device side of the
// FOTA stack, used by `fota client`, by tests and by the demo's simulated
// fleet.
//
// A Client holds Objects (object.go: a small interface per object, with
// SimpleObject in simple.go as the generic value-store implementation and
// the standard Security 0, Server 1, Device 3, Connectivity Monitoring 4
// and Firmware Update 5 built on it). The standard objects name the object
// version and the resource IDs they implement; every resource's name,
// type, operations and multiplicity is the definition package objects
// holds for that version (model.go), never a declaration of the client's
// own. Run registers with the server over
// CoAP or DTLS (transport.go: pion/dtls with PSK or X.509 and Connection
// ID, explicit handshake with a timeout), keeps the registration alive
// with Updates, registers again when the server forgot it, and de-registers
// when its context ends (registration.go). Requests the server sends on
// the same session reach handler.go, which routes them to the objects:
// Read, Discover (discover.go), Write, Write-Attributes (attributes.go),
// Execute, Create, Delete, Read/Write-Composite (composite.go), Observe and
// Observe-Composite (observe.go: one goroutine per observation, honouring
// pmin, pmax, gt, lt, st, epmin, epmax, edge, con and hqmax). Send posts
// values to /dp. Queue mode closes
// the socket QueueWait after the last exchange and reopens it, on the same
// port, for the next Update or for a notification that is due.
//
// Later work plugs in through SetObject (its own Security/Server objects
// for bootstrap, the Firmware Update state machine), RawHandler for
// objects that need the CoAP request itself (Block1 streaming, rawblock.go)
// and Config.StateDir for what must survive a reboot.
package client
