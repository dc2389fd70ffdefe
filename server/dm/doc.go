// Package dm is device management, the heart of the LwM2M server: the CoAP
// and DTLS listeners of the device side, the registration interface (LwM2M
// Core 6.2: register, update, de-register, expiry), the security check of
// endpoint against DTLS identity, requests to devices over their own
// sessions (Read, Write, Execute, Create, Delete, Discover, Write-Attributes
// and the composite operations, 6.3), queued for queue-mode devices that
// sleep (6.5), Block1 sends of large payloads, and observations with their
// notifications and Send (6.4), which survive a restart.
//
// What it keeps goes through the store interfaces (Store); what happens is
// published on an events.Broker. The firmware download and campaigns are
// other parts that use a Server; the HTTP API is over all of them.
package dm
