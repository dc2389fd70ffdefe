package lwm2m_test

import (
	"fmt"

	"github.com/fotastack/fota/lwm2m"
)

// A server reads /3/0/9 (Battery Level) from a TLV device: TLV carries no
// types, so the decoder asks a TypeResolver (here a TypeMap; the objects
// registry in the server).
func ExampleDecode() {
	types := lwm2m.TypeMap{lwm2m.ResourcePath(3, 0, 9): lwm2m.TypeInteger}
	entries, err := lwm2m.Decode(lwm2m.FormatTLV, lwm2m.MustParsePath("/3/0/9"), []byte{0xC1, 0x09, 0x64}, types)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(entries[0].Path, entries[0].Value)
	// Output: /3/0/9 integer(100)
}

// A composite payload spans objects: with the root as base, each object
// instance gets its own SenML base name.
func ExampleEncode() {
	b, _ := lwm2m.Encode(lwm2m.FormatSenMLJSON, lwm2m.Root, []lwm2m.Entry{
		{Path: lwm2m.ResourcePath(3, 0, 9), Value: lwm2m.Integer(95)},
		{Path: lwm2m.ResourcePath(5, 0, 3), Value: lwm2m.Integer(0)},
	})
	fmt.Println(string(b))
	// Output: [{"bn":"/3/0/","n":"9","v":95},{"bn":"/5/0/","n":"3","v":0}]
}

// The server picks the format to ask a device for from its registration.
func ExampleBestFormat() {
	reg, _ := lwm2m.ParseRegistrationPayload([]byte(`</>;rt="oma.lwm2m";ct="60 110 112 11542 11544",</1/0>,</3/0>,</5/0>`))
	fmt.Println(lwm2m.BestFormat(reg.Formats, "1.2"), lwm2m.BestFormat(reg.Formats, "1.1"))
	// Output: application/vnd.oma.lwm2m+cbor application/senml+cbor
}
