package delta

import (
	"bytes"
	"testing"
)

func fuzzSeeds(f *testing.F, body bool) {
	old, new := smallPair()
	for _, o := range []Options{{}, {InPlace: true, EraseBlock: 1024}, {InPlace: true, EraseBlock: 256, DeviceType: "dev", Version: "1.2.3", SeqNo: 7}} {
		o.Key = testKey
		pkg, err := Make(old, new, o)
		if err != nil {
			f.Fatal(err)
		}
		if body {
			pkg = pkg[:len(pkg)-sigSize]
		}
		f.Add(pkg)
	}
}

// FuzzParse feeds arbitrary bytes to the header parser and, when a header
// parses, to the whole stream decoder.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Parse(data)
		if err != nil {
			return
		}
		if h.NewSize > 1<<20 {
			return // bounded, but slow to decode for a fuzzer
		}
		Inspect(data)
	})
}

// FuzzApply signs arbitrary package bodies so that they reach the decoder:
// it must refuse them or produce exactly the new image.
func FuzzApply(f *testing.F) {
	fuzzSeeds(f, true)
	old, new := smallPair()
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := Apply(old, resign(body), testPub)
		if err == nil && !bytes.Equal(out, new) {
			h, _ := Parse(resign(body))
			if h != nil && h.NewHash == sha256Sum(new) {
				t.Fatalf("Apply returned %d bytes that are not the new image", len(out))
			}
		}
	})
}
