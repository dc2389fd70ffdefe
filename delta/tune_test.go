package delta

import (
	"flag"
	"strconv"
	"testing"
)

// tune enables the measurement runs used to pick the generator's
// parameters (go test -run 'Tune|Stats' -v -delta.tune).
var tune = flag.Bool("delta.tune", false, "run the parameter tuning and stream statistics reports")

// TestTune reports in-place package sizes on the shared pairs for a grid
// of generator parameters.
func TestTune(t *testing.T) {
	if !*tune {
		t.Skip("tuning report; enable with -delta.tune")
	}
	defer func(g []int, w int) { matchGains, searchWidth = g, w }(matchGains, searchWidth)
	for _, g := range []int{4, 6} {
		for _, w := range []int{12} {
			matchGains, searchWidth = []int{g}, w
			tot := 0
			s := ""
			for _, p := range firmwarePairs(t) {
				pkg, _ := Make(p.old, p.new, Options{InPlace: true, Key: testKey})
				tot += len(pkg)
				h, _ := Parse(pkg)
				s += " " + p.name[:5] + ":" + itoa(len(pkg)) + map[bool]string{true: "d", false: "a"}[h.Descending] + "/lc" + itoa(h.LitCtxBits) + "/w" + itoa(h.LitWindow)
			}
			t.Logf("gain %d width %d: %s", g, w, s)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestJump reports in-place sizes for settings of jumpCost.
func TestJump(t *testing.T) {
	if !*tune {
		t.Skip("tuning report; enable with -delta.tune")
	}
	defer func(a []int, b int) { jumpFrees, jumpDiv = a, b }(jumpFrees, jumpDiv)
	for _, r := range [][2]int{{64, 1}, {8, 4}, {4, 4}, {6, 4}} {
		jumpFrees, jumpDiv = []int{r[0]}, r[1]
		tot := 0
		s := ""
		for _, p := range firmwarePairs(t) {
			pkg, _ := Make(p.old, p.new, Options{InPlace: true, Key: testKey})
			tot += len(pkg)
			s += " " + p.name[:5] + ":" + itoa(len(pkg))
		}
		t.Logf("jump %v: %s total %d", r, s, tot)
	}
}
