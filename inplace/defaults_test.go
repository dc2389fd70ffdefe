package inplace

import (
	"testing"

	"github.com/fotastack/fota/delta"
)

// A package made with the generator's default RAM must install on a device
// with the installer's default budget; the two constants live in packages
// that cannot import each other in that direction, so this test ties them.
func TestDeltaDefaultRAMFitsDefaultDevice(t *testing.T) {
	if delta.DefaultRAM != DefaultDecoderRAM {
		t.Fatalf("delta.DefaultRAM = %d, installer grants the decoder %d by default", delta.DefaultRAM, DefaultDecoderRAM)
	}
}
