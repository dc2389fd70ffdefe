// Package firmware is the device side of firmware update: the LwM2M
// Firmware Update object (/5, object version 1.1, LwM2M Core 1.2 Appendix
// E.6) with its state machine, push delivery (a Block1 write of the package
// to /5/0/0, streamed into the flash's staging area block by block), pull
// delivery (a coap:// or coaps:// Package URI fetched with the device's own
// Block2 loop, resumed after a connection loss or a reboot, restarted when
// the ETag changes) and Update, which verifies the staged package and runs
// the in-place installer (package inplace), then the simulated reboot.
//
// The object plugs into the LwM2M client core with client.Client.SetObject;
// Attach does that and wires the reboot to a re-registration. Its progress
// survives a reboot: a small JSON record in the device's state directory
// holds state, result, URI, ETag and the bytes staged, and the flash holds
// the bytes themselves.
package firmware
