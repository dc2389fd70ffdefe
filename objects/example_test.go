package objects_test

import (
	"fmt"
	"os"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

func ExampleRegistry_Validate() {
	reg := objects.Default()
	write := []lwm2m.Entry{
		{Path: lwm2m.MustParsePath("/5/0/1"), Value: lwm2m.String("coaps://fw.example/v2.bin")},
		{Path: lwm2m.MustParsePath("/5/0/3"), Value: lwm2m.Integer(1)},
	}
	err := reg.Validate(objects.OpWrite, write)
	code := objects.CoAPCode(err)
	fmt.Println(err)
	fmt.Printf("%d.%02d\n", code>>5, code&31)
	// Output:
	// objects: /5/0/3: not writable: "State" has operations R
	// 4.05
}

func ExampleLoadDDF() {
	f, err := os.Open("testdata/3303.xml")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	models, err := objects.LoadDDF(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := objects.Default()
	if err := reg.Add(models...); err != nil {
		fmt.Println(err)
		return
	}
	res, _ := reg.Resource(lwm2m.MustParsePath("/3303/0/5700"))
	fmt.Println(res)
	// Output:
	// resource 5700 "Sensor Value" (R, float, single)
}

func ExampleRegistry_Typed() {
	reg := objects.Default()
	// TLV carries no types: a decoder without the model yields opaque bytes.
	decoded := []lwm2m.Entry{
		{Path: lwm2m.MustParsePath("/3/0/9"), Value: lwm2m.Opaque([]byte{0x55})},
		{Path: lwm2m.MustParsePath("/5/0/3"), Value: lwm2m.Opaque([]byte{0x02})},
	}
	typed, err := reg.Typed(decoded)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range typed {
		fmt.Println(e.Path, e.Value)
	}
	// Output:
	// /3/0/9 integer(85)
	// /5/0/3 integer(2)
}
