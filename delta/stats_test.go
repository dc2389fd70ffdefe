package delta

import (
	"fmt"
	"testing"
)

// TestStatsDump reports, per shared pair, the instruction counts and the
// coded size of each stream (control fields, differences, literals).
func TestStatsDump(t *testing.T) {
	if !*tune {
		t.Skip("statistics report; enable with -delta.tune")
	}
	for _, p := range firmwarePairs(t) {
		m := newMatcher(p.old, p.new)
		for _, inPlace := range []bool{false, true} {
			h := &Header{InPlace: inPlace, OldSize: uint32(len(p.old)), NewSize: uint32(len(p.new)), Steps: 1, LitCtxBits: 3}
			if inPlace {
				h.EraseBlock = 4096
				h.Steps = (len(p.new) + 4095) / 4096
				h.Descending = true
			}
			pl := m.plan(h, 4)
			for lc := 0; lc <= 3; lc++ {
				h.LitCtxBits = lc
				e := newEncoder(lc)
				var cost [costKinds]float64
				e.rc.cost = &cost
				nops, ncopy, nlit, nz := 0, 0, 0, 0
				for k, ops := range pl.steps {
					v := newView(h, k, p.old, p.new)
					for _, o := range ops {
						nops++
						ncopy += o.copyLen
						nlit += o.litLen
						for i := 0; i < o.copyLen; i++ {
							if p.new[o.out+i] != v.at(o.src+int64(i)) {
								nz++
							}
						}
					}
				}
				out := encodePlan2(pl, p.old, p.new, e)
				t.Logf("%s inplace=%v: %d bytes; ops %d copy %d (nonzero diff %d) lit %d; cost bytes copyLen %.0f litLen %.0f disp %.0f diff %.0f lit %.0f",
					p.name+fmt.Sprint(lc), inPlace, len(out), nops, ncopy, nz, nlit, cost[numCopyLen]/8, cost[numExtraLen]/8, cost[numDisp]/8, cost[kindDiff]/8, (cost[kindLiteral]+cost[numLitDist]+cost[numLitLen])/8)
			}
		}
	}
}
