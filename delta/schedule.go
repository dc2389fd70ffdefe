package delta

import (
	"slices"
)

// The schedule of an in-place package: the order the erase blocks are
// written in and the old blocks stashed aside first.
//
// Writing block i overwrites the old bytes other blocks may still want to
// copy from. Let w(i, j) be the bytes new block i copies from old block j
// in the unconstrained (sequential) plan. An order loses w(i, j) whenever j
// is written before i: those bytes must then come from elsewhere or become
// literals. Ascending order loses every copy from a lower block, descending
// every copy from a higher one; code that moved both ways, or blocks that
// read each other (a cycle of the CRWI graph: copy-read/write-interfering,
// Burns and Long 1997), lose under both. scheduleFor looks for an order of
// small loss by local search (moving one block at a time to where it loses
// least: a feedback arc set heuristic), then stashes the blocks whose
// loss remains largest, which removes their edges whatever the order.

// minMoveGain is the loss in bytes a move in the block order must save:
// every move may add two runs to the header, and small gains are
// within the noise of the loss estimate.
const minMoveGain = 64

// minStashGains are the losses in bytes a stashed block must save, one
// schedule each (Make keeps the one whose package is smallest): a stash
// costs the device an erase block of flash and a copy before the first
// step, and the loss estimate is only an estimate of package bytes. On the
// shared pairs 128 gives nrf52 35,528 bytes in place against 35,646 with
// 256, and upy-esp8266 67,308 against 67,302 (the other five pairs get no
// stash), so only 128 is tried: a trial costs a plan and an encode.
var minStashGains = []int64{128}

// maxScheduleBlocks bounds the images scheduleFor works on (the local
// search is quadratic in the worst case); larger ones keep a plain order.
const maxScheduleBlocks = 1 << 14

// schedule is a block order (runs) and a stash.
type schedule struct {
	order []BlockRun
	stash []uint32
}

// scheduleFor returns block orders (runs) and stashes for an in-place
// package of header h, from the sequential plan with the given match gain
// and search weight, one per distinct result of minStashGains, none
// when it finds nothing better than a plain ascending or descending order
// without stash. It also says which plain order loses fewer copy bytes
// (descending or not) and whether it could tell (known: the image has
// blocks enough and not too many).
func scheduleFor(m *matcher, h *Header, gain, weight, maxStash int) (out []schedule, desc, known bool) {
	n := h.Steps
	if n < 2 || n > maxScheduleBlocks {
		return nil, false, false
	}
	bs := int(h.EraseBlock)
	sh := Header{OldSize: h.OldSize, NewSize: h.NewSize, Steps: 1}
	pl := m.planWeighted(&sh, gain, weight, jumpFrees[0])
	// Edges of the interference graph: reads[i][j] = w(i, j) for j != i,
	// blocks j that step i could overwrite (j < n).
	type edge struct {
		y        int32
		out, in_ int64 // bytes x reads from y, bytes y reads from x
	}
	wm := map[[2]int32]int64{}
	for _, o := range pl.steps[0] {
		for i := 0; i < o.copyLen; {
			d := (o.out + i) / bs
			s := int(o.src+int64(i)) / bs
			e := min(o.copyLen, (d+1)*bs-o.out, (s+1)*bs-int(o.src))
			if s != d && s < n {
				wm[[2]int32{int32(d), int32(s)}] += int64(e - i)
			}
			i = e
		}
	}
	nb := make([][]edge, n)
	add := func(x, y int32, out, in int64) {
		for k := range nb[x] {
			if nb[x][k].y == y {
				nb[x][k].out += out
				nb[x][k].in_ += in
				return
			}
		}
		nb[x] = append(nb[x], edge{y, out, in})
	}
	for k, c := range wm {
		add(k[0], k[1], c, 0)
		add(k[1], k[0], 0, c)
	}
	stashed := make([]bool, n)
	// loss of an order: bytes i reads from j with j written first.
	loss := func(pos []int) (total int64, per []int64) {
		per = make([]int64, n)
		for k, c := range wm {
			if !stashed[k[1]] && pos[k[1]] < pos[k[0]] {
				total += c
				per[k[1]] += c
			}
		}
		return total, per
	}
	search := func(order []int32, minGain int64) []int {
		pos := make([]int, n)
		for k, b := range order {
			pos[b] = k
		}
		type cand struct {
			p int
			d int64
		}
		var right, left []cand
		for pass := 0; pass < 32; pass++ {
			moved := false
			for x := int32(0); int(x) < n; x++ {
				p := pos[x]
				right, left = right[:0], left[:0]
				for _, e := range nb[x] {
					if stashed[e.y] {
						// x's reads of y are free; y's reads of x still count
						e.out = 0
					}
					if stashed[x] {
						e.in_ = 0
					}
					if q := pos[e.y]; q > p {
						right = append(right, cand{q, e.out - e.in_})
					} else {
						left = append(left, cand{q, e.in_ - e.out})
					}
				}
				bestD, bestQ := -minGain, p
				slices.SortFunc(right, func(a, b cand) int { return a.p - b.p })
				var d int64
				for _, c := range right {
					if d += c.d; d < bestD {
						bestD, bestQ = d, c.p
					}
				}
				slices.SortFunc(left, func(a, b cand) int { return b.p - a.p })
				d = 0
				for _, c := range left {
					if d += c.d; d < bestD {
						bestD, bestQ = d, c.p
					}
				}
				if bestQ == p {
					continue
				}
				moved = true
				if bestQ > p {
					copy(order[p:bestQ], order[p+1:bestQ+1])
				} else {
					copy(order[bestQ+1:p+1], order[bestQ:p])
				}
				order[bestQ] = x
				for k := min(p, bestQ); k <= max(p, bestQ); k++ {
					pos[order[k]] = k
				}
			}
			if !moved {
				break
			}
		}
		return pos
	}
	plain := func(desc bool) []int32 {
		o := make([]int32, n)
		for k := range o {
			o[k] = int32(k)
			if desc {
				o[k] = int32(n - 1 - k)
			}
		}
		return o
	}
	// The plain orders' losses: the schedule must beat the better one.
	plainLoss := int64(-1)
	for _, d := range []bool{false, true} {
		o := plain(d)
		pos := make([]int, n)
		for k, b := range o {
			pos[b] = k
		}
		if l, _ := loss(pos); plainLoss < 0 || l < plainLoss {
			plainLoss, desc = l, d
		}
	}
	for _, minStashGain := range minStashGains {
		stashed = make([]bool, n)
		o, st := scheduleWith(n, bs, h, maxStash, minStashGain, plainLoss, stashed, plain, search, loss)
		if o == nil {
			continue
		}
		dup := false
		for _, x := range out {
			dup = dup || slices.Equal(x.order, o) && slices.Equal(x.stash, st)
		}
		if !dup {
			out = append(out, schedule{o, st})
		}
	}
	return out, desc, true
}

// scheduleWith runs the order search and picks the stash with one
// minimum stash gain (scheduleFor).
func scheduleWith(n, bs int, h *Header, maxStash int, minStashGain, plainLoss int64, stashed []bool,
	plain func(bool) []int32, search func([]int32, int64) []int, loss func([]int) (int64, []int64)) ([]BlockRun, []uint32) {
	var best []int32
	var bestLoss int64 = -1
	var bestPer []int64
	for minGain := int64(minMoveGain); best == nil && minGain < 1<<40; minGain *= 4 {
		for _, desc := range []bool{false, true} {
			o := plain(desc)
			pos := search(o, minGain)
			if len(runsOf(o)) > MaxRuns {
				continue
			}
			if l, per := loss(pos); bestLoss < 0 || l < bestLoss {
				best, bestLoss, bestPer = o, l, per
			}
		}
	}
	if best == nil {
		return nil, nil
	}
	var stash []uint32
	for len(stash) < maxStash {
		j := 0
		for k := range bestPer {
			if bestPer[k] > bestPer[j] {
				j = k
			}
		}
		if bestPer[j] < minStashGain || j*bs >= int(h.OldSize) {
			break
		}
		stashed[j] = true
		o := slices.Clone(best)
		pos := search(o, minMoveGain)
		l, per := loss(pos)
		if len(runsOf(o)) > MaxRuns || bestLoss-l < minStashGain {
			stashed[j] = false
			break
		}
		best, bestLoss, bestPer = o, l, per
		stash = append(stash, uint32(j))
	}
	if len(stash) == 0 && bestLoss >= plainLoss {
		return nil, nil
	}
	slices.Sort(stash)
	return runsOf(best), stash
}

// runsOf cuts a block order into maximal runs of consecutive blocks.
func runsOf(order []int32) []BlockRun {
	var runs []BlockRun
	for k := 0; k < len(order); {
		e := k + 1
		if e < len(order) {
			d := order[e] - order[k]
			if d == 1 || d == -1 {
				for e+1 < len(order) && order[e+1]-order[e] == d {
					e++
				}
				e++
			}
		}
		runs = append(runs, BlockRun{uint32(order[k]), uint32(order[e-1])})
		k = e
	}
	return runs
}

// setSchedule gives h the block order and stash and the generator's
// caches of them.
func setSchedule(h *Header, order []BlockRun, stash []uint32) {
	h.Order, h.Stash, h.Descending = order, stash, false
	h.rank = make([]int32, h.Steps)
	k := 0
	for _, r := range order {
		for i := 0; i < r.Len(); i++ {
			b := int(r.First) + i
			if r.First > r.Last {
				b = int(r.First) - i
			}
			h.rank[b] = int32(k)
			k++
		}
	}
	h.stashSet = make([]bool, (h.OldSize+h.EraseBlock-1)/h.EraseBlock)
	for _, b := range stash {
		h.stashSet[b] = true
	}
}
