package inplace

import "fmt"

// Info is a read-only look at a device's flash, for `fota flash info`.
type Info struct {
	Layout       Layout
	Boot         *BootRecord // nil if no copy is valid (BootErr says why)
	BootErr      error
	Journal      Record // newest journal record; State is StateIdle if none
	WearMax      int    // highest erase count of any block
	WearMaxBlock int
	WearMean     float64
}

// Inspect reads the boot record, the journal and the wear counters without
// writing anything.
func Inspect(f *Flash) (Info, error) {
	var in Info
	l, err := LayoutFor(f.Geometry())
	if err != nil {
		return in, err
	}
	in.Layout = l
	in.Boot, _, in.BootErr = readBootRecord(f, l)
	var buf [recordSize]byte
	j, err := OpenJournal(f, l, buf[:])
	if err != nil {
		return in, fmt.Errorf("inspect: %w", err)
	}
	in.Journal = j.Last()
	in.WearMax, in.WearMaxBlock, in.WearMean = wear(f, 0, f.Geometry().Blocks())
	return in, nil
}

// wear is the highest and mean erase count over blocks [from, to).
func wear(f *Flash, from, to int) (maxCount, maxBlock int, mean float64) {
	total := 0
	for b := from; b < to; b++ {
		c := f.EraseCount(b)
		total += c
		if c > maxCount {
			maxCount, maxBlock = c, b
		}
	}
	if to > from {
		mean = float64(total) / float64(to-from)
	}
	return maxCount, maxBlock, mean
}
