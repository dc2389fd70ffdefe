package client

import (
	"fmt"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

// Errors an Object returns; they are lwm2m's sentinels, so the client
// maps each to its CoAP response code with lwm2m.CodeOf (LwM2M Core 6.4
// and Appendix E). Wrap them with context (fmt.Errorf("...: %w",
// ErrNotFound)) so the reason reaches the log.
var (
	// ErrNotFound: the object, instance or resource does not exist (4.04).
	ErrNotFound = lwm2m.ErrNotFound
	// ErrNotAllowed: the operation is not allowed on this target (4.05).
	ErrNotAllowed = lwm2m.ErrMethodNotAllowed
	// ErrBadRequest: the payload or arguments are wrong (4.00).
	ErrBadRequest = lwm2m.ErrBadRequest
	// ErrUnauthorized: the server may not access this target (4.01).
	ErrUnauthorized = lwm2m.ErrUnauthorized
	// ErrUnsupportedFormat: the content format is not understood (4.15).
	ErrUnsupportedFormat = lwm2m.ErrUnsupportedMediaType
	// ErrNotAcceptable: the requested Accept format cannot be produced (4.06).
	ErrNotAcceptable = lwm2m.ErrNotAcceptable
)

// ResourceDef describes one resource of an object: ID, name, operations,
// type, single or multiple, mandatory or optional. It is the object
// registry's own type, so the built-in objects hold the registry's
// definitions themselves (Model, Defs, NewModelObject) instead of
// declarations that could drift from them. Objects the registry does not
// know (an application's own) may still fill one in by hand.
type ResourceDef = objects.ResourceModel

// Object is one LwM2M object implemented on the device. The client routes
// every server operation on /o, /o/i, /o/i/r and /o/i/r/ri to the Object
// registered for o. Implementations must be safe for concurrent use: the
// request handler, observations and the application call them from
// different goroutines. Return the package's sentinel errors (wrapped) so
// that the server gets the right CoAP code.
//
// SimpleObject is a ready implementation for objects whose resources are
// plain values; later work (bootstrap, the Firmware Update state machine)
// plugs in its own implementations through Client.SetObject.
type Object interface {
	// ID is the object ID (3 for Device).
	ID() uint16
	// Version is the object version announced at registration ("1.1");
	// "" or "1.0" means 1.0 and is not announced (LwM2M Core 6.2.1).
	Version() string
	// Instances lists the instance IDs in ascending order.
	Instances() []uint16
	// Resources describes the resources present in instance inst, in
	// ascending ID order; ErrNotFound when the instance does not exist.
	Resources(inst uint16) ([]ResourceDef, error)
	// Read returns the values at p, which is /o/i, /o/i/r or /o/i/r/ri,
	// as resource or resource-instance entries. Resources without read
	// access are left out of an instance read; reading one directly is
	// ErrNotAllowed.
	Read(p lwm2m.Path) ([]lwm2m.Entry, error)
	// Write stores entries, all under p (/o/i, /o/i/r or /o/i/r/ri).
	// replace=true is a Replace (CoAP PUT): a written multiple resource
	// loses the instances not in entries; false is a Partial Update (POST).
	Write(p lwm2m.Path, entries []lwm2m.Entry, replace bool) error
	// Execute runs the executable resource p (/o/i/r) with the arguments
	// of LwM2M Core 5.4.5 as sent. It must return quickly: it runs inside
	// the CoAP handler, so slow work belongs in a goroutine it owns.
	Execute(p lwm2m.Path, args string) error
	// Create makes instance inst with the given resource entries.
	Create(inst uint16, entries []lwm2m.Entry) error
	// Delete removes instance inst.
	Delete(inst uint16) error
}

// ChangeNotifier is implemented by objects that report value changes so
// that observations fire at once. The client installs its hook when the
// object is registered with it.
type ChangeNotifier interface {
	SetChangeHook(func(lwm2m.Path))
}

// notFound is a helper for the common "no such path" error.
func notFound(p lwm2m.Path) error { return fmt.Errorf("%v: %w", p, ErrNotFound) }
