// Package objects is the registry of LwM2M object models (OMA object
// definitions and DDF XML).
//
// An ObjectModel describes one object at one object version: its ID, name,
// whether it has several instances, and for every resource the ID, name,
// operations (R, W, RW, E or none), data type, single or multiple, mandatory
// or optional, range and units. The built-in models (objects 0 to 7 and 9
// at their newest versions, Firmware Update at 1.1, and the earlier
// versions of Server, Device and Access Control a LwM2M 1.1 client
// implements) are OMA DDF files embedded from ddf/ and read by the same
// loader, LoadDDF, that reads custom DDF files at run time
// (Registry.LoadDir).
//
// It is the one source of resource names, types, operations and
// multiplicity in the module: the server types and validates what devices
// send with it, and the device client builds its objects from it.
//
// A Registry is what the rest of the stack asks:
//   - the lwm2m codecs use Registry.ResourceType (their TypeResolver) to
//     decode formats that do not carry types, such as TLV and text/plain;
//   - Registry.Typed turns values a decoder left untyped (opaque TLV bytes)
//     into the model's types;
//   - Registry.Validate checks a Write, Create, Bootstrap-Write or a read
//     result against the model, and CoAPCode maps its error to the CoAP
//     response code.
package objects
