package delta

import (
	"fmt"
	"os"
	"testing"
)

func TestDumpDiffs(t *testing.T) {
	for _, p := range firmwarePairs(t) {
		m := newMatcher(p.old, p.new)
		h := &Header{OldSize: uint32(len(p.old)), NewSize: uint32(len(p.new)), Steps: 1}
		pl := m.plan(h)
		f, _ := os.Create("/tmp/diff-" + p.name + ".txt")
		v := view{h: h, old: p.old, new: p.new}
		for _, o := range pl.steps[0] {
			fmt.Fprintf(f, "OP %d %d %d %d\n", o.out, o.src, o.copyLen, o.litLen)
			for i := 0; i < o.copyLen; i++ {
				a, b := v.at(o.src+int64(i)), p.new[o.out+i]
				if a != b {
					fmt.Fprintf(f, "%d %d %d\n", o.out+i, a, b)
				}
			}
		}
		f.Close()
	}
}
