package client

import (
	"fmt"
	"slices"

	"github.com/fotastack/fota/objects"
)

// LwM2MVersion is the LwM2M enabler version this client implements: it
// registers with lwm2m=1.1 (LwM2M Core 6.2.1), and every object version it
// implements is defined for this enabler or an earlier one.
const LwM2MVersion = "1.1"

// models holds the OMA object definitions the package objects ships. The
// built-in objects take the name, type, operations and multiplicity of
// every resource from here: the module spells them once, in objects/ddf,
// for the server and the client alike.
var models = objects.Default()

// Model returns the built-in definition of object id at object version
// version ("1.1"), false if the registry has none. An object that
// implements it announces that version (LwM2M Core 6.2.1, ver=).
func Model(id uint16, version string) (*objects.ObjectModel, bool) {
	return models.GetVersion(id, version)
}

// Defs returns the definitions of the resources ids of m, in increasing ID
// order; all of m's resources when ids is empty. An object that implements
// only some resources of its model lists them, so that a newer model with
// more resources does not make it claim ones it lacks. An ID m does not
// define is an error: a resource the registry lacks belongs in a DDF file
// (objects/ddf), not in a declaration of the client's own.
func Defs(m *objects.ObjectModel, ids ...uint16) ([]ResourceDef, error) {
	if len(ids) == 0 {
		ids = m.ResourceIDs()
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	defs := make([]ResourceDef, 0, len(ids))
	for i, id := range ids {
		if i > 0 && ids[i-1] == id {
			return nil, fmt.Errorf("%v: resource %d listed twice", m, id)
		}
		r, ok := m.Resource(id)
		if !ok {
			return nil, fmt.Errorf("%v defines no resource %d", m, id)
		}
		defs = append(defs, *r)
	}
	return defs, nil
}

// NewModelObject makes a SimpleObject for the resources ids of object
// model m (all of them when ids is empty), with no instances: its ID,
// object version, whether it has several instances and every resource's
// definition are m's.
func NewModelObject(m *objects.ObjectModel, ids ...uint16) (*SimpleObject, error) {
	defs, err := Defs(m, ids...)
	if err != nil {
		return nil, err
	}
	return NewSimpleObject(m.ID, m.Version, m.Multiple, defs...), nil
}

// newBuiltinObject makes object id of this package (Security, Server,
// Device, ...) at object version version, implementing resources ids.
func newBuiltinObject(id uint16, version string, ids ...uint16) *SimpleObject {
	m, defs := builtinDefs(id, version, ids...)
	return NewSimpleObject(m.ID, m.Version, m.Multiple, defs...)
}

// builtinDefs returns the model of object id at version and the
// definitions of resources ids. The objects of this package name fixed
// IDs and versions of embedded models, so a failure is a broken build, not
// input: the package tests construct every built-in object.
func builtinDefs(id uint16, version string, ids ...uint16) (*objects.ObjectModel, []ResourceDef) {
	m, ok := Model(id, version)
	if !ok {
		panic(fmt.Sprintf("client: no built-in model of object %d version %s", id, version))
	}
	defs, err := Defs(m, ids...)
	if err != nil {
		panic("client: " + err.Error())
	}
	return m, defs
}
