package firmware

import (
	"testing"

	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// FuzzBlock2Range: any option value and size give a range inside the
// representation or an error, never a panic.
func FuzzBlock2Range(f *testing.F) {
	for _, c := range []struct {
		num  int64
		szx  blockwise.SZX
		size int
	}{{0, blockwise.SZX1024, 5000}, {4, blockwise.SZX1024, 5000}, {9, blockwise.SZX512, 5000}, {0, blockwise.SZX16, 0}} {
		v, _ := blockwise.EncodeBlockOption(c.szx, c.num, false)
		f.Add(v, c.size)
	}
	f.Fuzz(func(t *testing.T, v uint32, size int) {
		if size < 0 || size > MaxImageSize {
			return
		}
		off, n, err := block2Range(v, size)
		if err != nil {
			return
		}
		if off < 0 || n < 0 || off+n > size || n > 1024 {
			t.Fatalf("range [%d,+%d) of %d bytes", off, n, size)
		}
	})
}
