package delta

import (
	"os"
	"testing"
)

func TestDumpLits(t *testing.T) {
	for _, p := range firmwarePairs(t) {
		m := newMatcher(p.old, p.new)
		h := &Header{OldSize: uint32(len(p.old)), NewSize: uint32(len(p.new)), Steps: 1}
		pl := m.plan(h)
		var lits []byte
		for _, o := range pl.steps[0] {
			lits = append(lits, p.new[o.out+o.copyLen:o.out+o.copyLen+o.litLen]...)
		}
		os.WriteFile("/tmp/lit-"+p.name, lits, 0o644)
	}
}
