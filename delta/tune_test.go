package delta

import (
	"testing"
)

func TestTune(t *testing.T) {
	for _, g := range []int{5, 6, 7} {
		for _, w := range []int{12} {
			matchGain, searchWidth = g, w
			tot := 0
			s := ""
			for _, p := range firmwarePairs(t) {
				pkg, _ := Make(p.old, p.new, Options{InPlace: true, Key: testKey})
				tot += len(pkg)
				h, _ := Parse(pkg)
				s += " " + p.name[:5] + ":" + itoa(len(pkg)) + map[bool]string{true: "d", false: "a"}[h.Descending]
			}
			t.Logf("gain %d width %d: %s", g, w, s)
		}
	}
}

func itoa(i int) string { return string([]byte(fmtInt(i))) }
func fmtInt(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return fmtInt(i/10) + string(rune('0'+i%10))
}
