package delta

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
)

// Options are the inputs of Make.
type Options struct {
	// InPlace makes a package the device applies over the old image in
	// the same flash region, one erase block at a time.
	InPlace bool
	// EraseBlock is the device's erase block in bytes (in-place only;
	// default 4096).
	EraseBlock int
	// RAM is the most the device may spend on the decoder's arena (default
	// 16384); the model is sized to fit it.
	RAM int
	// Key signs the package.
	Key ed25519.PrivateKey
	// Stash is the most flash, in bytes, an in-place package may ask the
	// device to set aside in its staging area (besides the package) for
	// copies of old blocks that the write order cannot keep readable
	// (Header.Stash); whole erase blocks, at most MaxStash of them. 0
	// means DefaultStash; negative, none.
	Stash int
	// DeviceType and Version (of the new image) go into the header, at
	// most 64 bytes each; SeqNo is the anti-rollback counter.
	DeviceType, Version string
	SeqNo               uint32
	// Fast skips the trials of other match gains and search weights
	// (stepTrials): one plan per block order instead of three. On the
	// shared pairs packages grew by up to 1.3% and make time fell by about
	// a quarter (BENCH.md).
	Fast bool
}

// Defaults of Options. DefaultRAM is the decoder arena a device grants when
// its installer works in 16 KiB besides its erase-block buffer: the
// installer keeps 832 bytes of fixed buffers (journal record, I/O, header)
// out of those 16 KiB, so a package made with the default fits a default
// device exactly (inplace.DefaultDecoderRAM, checked by a test there).
const (
	DefaultEraseBlock = 4096
	DefaultRAM        = 16384 - 832
	DefaultStash      = 32 << 10
)

// view is the source as the device sees it while decoding step k: old
// bytes in region blocks not yet written, new bytes in written ones, and
// past the region (at region + old offset) the old bytes of stashed blocks.
// The per-block tables are computed once per step: the matcher asks them
// for every byte it compares.
type view struct {
	h        *Header
	k        int
	old, new []byte
	bs       int64 // erase block (in-place), or larger than any image
	region   int64 // start of the stash space (in-place), or larger than any offset
	written  []bool
	// end is validEnd of each region block, then of each old block in
	// the stash space (in-place)
	end []int64
}

func newView(h *Header, k int, old, new []byte) *view {
	v := &view{h: h, k: k, old: old, new: new, bs: 1 << 62, region: 1 << 62}
	if h.InPlace {
		v.bs = int64(h.EraseBlock)
		v.region = int64(h.Region())
		nb := int(v.region / v.bs)
		ob := int((int64(h.OldSize) + v.bs - 1) / v.bs)
		v.written = make([]bool, nb)
		v.end = make([]int64, nb+ob)
		for b := range nb {
			v.written[b] = writtenBefore(h, b, k)
			v.end[b] = validEnd(h, int64(b)*v.bs, k)
		}
		for b := range ob {
			x := v.region + int64(b)*v.bs
			v.end[nb+b] = validEnd(h, x, k)
		}
	}
	return v
}

func (v *view) isWritten(b int64) bool {
	return v.written != nil && b >= 0 && b < int64(len(v.written)) && v.written[b]
}

// validEnd is the end of the readable bytes of the block holding x.
func (v *view) validEnd(x int64) int64 {
	if v.end == nil {
		return int64(v.h.OldSize)
	}
	b := x / v.bs
	if x >= v.region {
		b = int64(len(v.written)) + (x-v.region)/v.bs
	}
	if b < 0 || b >= int64(len(v.end)) {
		return x
	}
	return v.end[b]
}

func (v *view) valid(x int64) bool { return x >= 0 && x < v.validEnd(x) }

func (v *view) at(x int64) byte {
	if x >= v.region {
		return v.old[x-v.region]
	}
	if v.isWritten(x / v.bs) {
		return v.new[x]
	}
	return v.old[x]
}

func (v *view) eq(x int64, b byte) bool { return v.valid(x) && v.at(x) == b }

// sameSide: x and y are both in the region or both in the stash space (a
// copy may not cross from one to the other).
func (v *view) sameSide(x, y int64) bool { return (x >= v.region) == (y >= v.region) }

// op is one instruction: copyLen bytes at out read from src plus
// differences, then litLen literal bytes.
type op struct {
	out     int
	src     int64
	copyLen int
	litLen  int
}

// plan is the instruction list of every step, in step order.
type plan struct {
	h     *Header
	steps [][]op
}

// Make builds a signed package that turns old into new.
func Make(old, new []byte, opts Options) ([]byte, error) {
	if len(old) > MaxImageSize || len(new) > MaxImageSize {
		return nil, fmt.Errorf("delta: images of %d and %d bytes; the limit is %d", len(old), len(new), MaxImageSize)
	}
	if len(opts.DeviceType) > maxStringLen || len(opts.Version) > maxStringLen {
		return nil, fmt.Errorf("delta: device type and version are limited to %d bytes", maxStringLen)
	}
	if len(opts.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("delta: Make needs an Ed25519 signing key")
	}
	if opts.RAM == 0 {
		opts.RAM = DefaultRAM
	}
	h := &Header{
		FormatVersion: formatVersion,
		InPlace:       opts.InPlace,
		OldSize:       uint32(len(old)),
		NewSize:       uint32(len(new)),
		OldHash:       sha256.Sum256(old),
		NewHash:       sha256.Sum256(new),
		DeviceType:    opts.DeviceType,
		Version:       opts.Version,
		SeqNo:         opts.SeqNo,
		Steps:         1,
	}
	if len(new) == 0 {
		h.Steps = 0
	}
	if opts.InPlace {
		if opts.EraseBlock == 0 {
			opts.EraseBlock = DefaultEraseBlock
		}
		if opts.EraseBlock < MinEraseBlock || opts.EraseBlock > MaxEraseBlock {
			return nil, fmt.Errorf("delta: erase block %d outside [%d, %d]", opts.EraseBlock, MinEraseBlock, MaxEraseBlock)
		}
		h.EraseBlock = uint32(opts.EraseBlock)
		h.Steps = (len(new) + opts.EraseBlock - 1) / opts.EraseBlock
	}
	// Model configurations that fit the RAM budget: literal context bits
	// and literal history window.
	var configs []config
	for lc := 0; lc <= maxLitCtxBits; lc++ {
		for _, win := range []int{0, 1024, 2048, 4096, 8192} {
			if ArenaSize(&Header{LitCtxBits: lc, LitWindow: win}) <= opts.RAM {
				configs = append(configs, config{lc, win})
			}
		}
	}
	if len(configs) == 0 {
		return nil, fmt.Errorf("delta: RAM budget %d is below the smallest decoder (%d bytes)", opts.RAM, ArenaSize(&Header{}))
	}

	m := newMatcher(old, new)
	// The plan trials are coded with the largest literal history with few
	// literal context bits and bytewise differences, the configuration
	// most packages end up with; the model options are then chosen on
	// the best plan (step 3: they hardly interact with the plan).
	c0 := configs[0]
	for _, c := range configs {
		if c.lc <= 1 && (c.win > c0.win || c.win == c0.win && c.lc > c0.lc) {
			c0 = c
		}
	}
	var best trial
	// 1. Block order. In place, the sequential plan's copies decide it
	// (scheduleFor): a schedule with a stash when one loses fewer copy
	// bytes than both plain orders (a trial per distinct stash), else the
	// plain order that loses fewer (descending suits content that moved
	// towards higher addresses, ascending the reverse). Only when that
	// cannot be estimated (one block, or too many) are both plain orders
	// coded. Measured on the shared pairs, the estimate picked the order
	// whose package was smaller on all seven.
	g0 := matchGains[0]
	var orders []trial
	plainOrders := []bool{false}
	if opts.InPlace {
		plainOrders = []bool{false, true}
	}
	if opts.InPlace && len(old) > 0 {
		if opts.Stash == 0 {
			opts.Stash = DefaultStash
		}
		maxStash := min(MaxStash, max(opts.Stash, 0)/opts.EraseBlock)
		scheds, desc, known := scheduleFor(m, h, g0, 0, maxStash)
		for _, s := range scheds {
			hh := *h
			setSchedule(&hh, s.order, s.stash)
			orders = append(orders, trial{h: hh, c: c0, gain: g0})
		}
		if known {
			plainOrders = []bool{desc}
		}
		if len(scheds) > 0 {
			plainOrders = nil
		}
	}
	for _, desc := range plainOrders {
		hh := *h
		hh.Descending = desc
		orders = append(orders, trial{h: hh, c: c0, gain: g0})
	}
	// 2. Other match gains, search weights and jump-cost free bits on
	// that order (stepTrials); with one order to try, in the same batch.
	tries := stepTrials
	if opts.Fast {
		tries = nil
	}
	steps := func(h Header) []trial {
		var ts []trial
		for _, s := range tries {
			ts = append(ts, trial{h: h, c: c0, gain: s[0], weight: s[1], free: s[2]})
		}
		return ts
	}
	if len(orders) == 1 {
		best = runTrials(m, old, new, append(orders, steps(orders[0].h)...))
	} else {
		best = runTrials(m, old, new, orders)
		best = pickTrial(best, runTrials(m, old, new, steps(best.h)))
	}
	// 3. The model: word-wise differences and difference trees by pattern,
	// then the literal model (context bits, history window, trees by
	// offset parity). Each set of fields has probabilities and contexts of
	// its own, so the coded size is the sum of the fields' sizes and each
	// choice is made by coding only its fields (fieldCost), all of them
	// at once; then the plan is coded once with the choices made.
	type choice struct {
		words, pattern, parity bool
		c                      config
		cost                   int
	}
	var choices []choice
	// (word-wise differences with pattern trees never won on the shared
	// pairs: 68,756 against 66,570 bytes on upy-esp8266, 5,610 against
	// 5,582 on upy-pybv11-oneline, so that pair is not tried)
	choices = append(choices, choice{}, choice{words: true}, choice{pattern: true})
	nDiff := len(choices)
	for _, c := range configs {
		choices = append(choices, choice{c: c})
	}
	cost := func(chs []choice, diffs int) {
		parallel(len(chs), func(i int) {
			ch := &chs[i]
			hh := best.h
			hh.WordDiffs, hh.DiffPattern, hh.LitParity = ch.words, ch.pattern, ch.parity
			hh.LitCtxBits, hh.LitWindow = ch.c.lc, ch.c.win
			p := *best.plan
			p.h = &hh
			ch.cost = fieldCost(&p, old, new, i < diffs)
		})
	}
	cost(choices, nDiff)
	bd, bl := choices[0], choices[nDiff]
	for _, ch := range choices[:nDiff] {
		if ch.cost < bd.cost {
			bd = ch
		}
	}
	for _, ch := range choices[nDiff:] {
		if ch.cost < bl.cost {
			bl = ch
		}
	}
	// literal trees by offset parity, with the configuration chosen
	par := []choice{{c: bl.c, parity: true}}
	cost(par, 0)
	if par[0].cost < bl.cost {
		bl = par[0]
	}
	more := []trial{{h: best.h, c: bl.c, gain: best.gain, weight: best.weight, words: bd.words, pattern: bd.pattern, parity: bl.parity, plan: best.plan}}
	best = pickTrial(best, runTrials(m, old, new, more))
	bestH, bestS := best.h, best.stream
	bestH.LitCtxBits, bestH.LitWindow, bestH.WordDiffs, bestH.DiffPattern, bestH.LitParity = best.c.lc, best.c.win, best.words, best.pattern, best.parity
	pkg := marshalHeader(&bestH)
	pkg = append(pkg, bestS...)
	return append(pkg, ed25519.Sign(opts.Key, pkg)...), nil
}

// config is a model configuration: literal context bits and literal
// history window.
type config struct{ lc, win int }

// trial is one candidate package: a plan (made for h with a match gain,
// or given) coded with a model configuration.
type trial struct {
	h      Header
	c      config
	gain   int
	weight int // search's displacement weight (stepTrials)
	free   int // jumpCost's free bits (jumpFrees; 0 means jumpFrees[0])
	words  bool
	// pattern: difference trees by the pattern of non-zero differences
	// (Header.DiffPattern)
	pattern bool
	// parity: literal trees by offset parity (Header.LitParity)
	parity bool
	plan   *plan
	stream []byte
}

// runTrials plans (when needed) and encodes the trials, as many at a time
// as there are CPUs, and returns the one with the smallest stream (the
// first of equals, so that the result is deterministic). With no trials it
// returns the zero trial.
func runTrials(m *matcher, old, new []byte, ts []trial) trial {
	parallel(len(ts), func(i int) {
		t := &ts[i]
		t.h.LitCtxBits, t.h.LitWindow, t.h.WordDiffs, t.h.DiffPattern, t.h.LitParity = t.c.lc, t.c.win, t.words, t.pattern, t.parity
		if t.free == 0 {
			t.free = jumpFrees[0]
		}
		if t.plan == nil {
			t.plan = m.planWeighted(&t.h, t.gain, t.weight, t.free)
		}
		p := *t.plan
		p.h = &t.h
		t.stream = encodePlan(&p, old, new)
	})
	var best trial
	for _, t := range ts {
		if trialLog != nil {
			trialLog(&t)
		}
		best = pickTrial(best, t)
	}
	return best
}

// parallel runs f(0), .., f(n-1), as many at a time as there are CPUs.
func parallel(n int, f func(int)) {
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// trialLog, when set (tests), sees every trial runTrials coded.
var trialLog func(*trial)

// pickTrial returns the better of two trials (a before b on a tie; a zero
// trial loses).
func pickTrial(a, b trial) trial {
	if a.stream == nil || (b.stream != nil && len(b.stream) < len(a.stream)) {
		return b
	}
	return a
}

// encodePlan range-codes the plan's instructions (format.go).
func encodePlan(p *plan, old, new []byte) []byte {
	e := newEncoder(p.h.LitCtxBits)
	e.win = p.h.LitWindow
	e.h.pat = p.h.DiffPattern
	e.h.par = p.h.LitParity
	return encodePlan2(p, old, new, e)
}

// fieldCost is the coded size of the plan's difference bytes alone (diffs)
// or of its literals alone, with the model of p.h: the fields have
// probabilities and contexts of their own (model.go), so a choice that
// changes only them changes a package by the change of this size.
func fieldCost(p *plan, old, new []byte, diffs bool) int {
	e := newEncoder(p.h.LitCtxBits)
	e.win = p.h.LitWindow
	e.h.pat = p.h.DiffPattern
	e.h.par = p.h.LitParity
	for k, ops := range p.steps {
		var v *view
		if diffs {
			v = newView(p.h, k, old, new)
		}
		for _, o := range ops {
			if diffs {
				e.copyDiffs(v, p.h.WordDiffs, o, new)
			} else if o.litLen > 0 {
				e.literals(uint32(o.out+o.copyLen), new[o.out+o.copyLen:o.out+o.copyLen+o.litLen])
			}
		}
	}
	return len(e.rc.finish())
}

// copyDiffs codes the difference bytes of copy o.
func (e *encoder) copyDiffs(v *view, words bool, o op, new []byte) {
	for i := 0; i < o.copyLen; {
		pos := o.out + i
		if words && pos&3 == 0 && i+4 <= o.copyLen {
			var sw uint32
			for j := 3; j >= 0; j-- {
				sw = sw<<8 | uint32(v.at(o.src+int64(i+j)))
			}
			w := binary.LittleEndian.Uint32(new[pos:]) - sw
			for j := 0; j < 4; j++ {
				e.diff(uint32(pos+j), byte(w>>(8*j)))
			}
			i += 4
			continue
		}
		e.diff(uint32(pos), new[pos]-v.at(o.src+int64(i)))
		i++
	}
}

func encodePlan2(p *plan, old, new []byte, e *encoder) []byte {
	for k, ops := range p.steps {
		v := newView(p.h, k, old, new)
		if k > 0 {
			e.h.startStep(p.h.blockAt(k-1) == p.h.blockAt(k)+1)
		}
		_, n := target(p.h, k)
		for i, o := range ops {
			toEnd := o.copyLen > 0 && o.litLen == 0 && i == len(ops)-1
			e.rc.kind, e.rc.shift = numCopyLen, rateNumber
			if toEnd {
				e.rc.bit(&e.m.end[endContext(i == 0)], 1)
			} else {
				e.rc.bit(&e.m.end[endContext(i == 0)], 0)
				w := e.m.num[numCopyLen].width
				if i == 0 {
					w = e.m.firstLen
				}
				e.numberW(numCopyLen, w, uint64(o.copyLen))
			}
			_ = n
			if o.copyLen > 0 {
				disp := o.src - int64(o.out)
				e.dispField(toEnd, i == 0, disp)
				e.copyDiffs(v, p.h.WordDiffs, o, new)
			}
			if toEnd {
				continue
			}
			e.number(numExtraLen, uint64(o.litLen))
			e.literals(uint32(o.out+o.copyLen), new[o.out+o.copyLen:o.out+o.copyLen+o.litLen])
		}
	}
	return e.rc.finish()
}

// matcher finds matches of new against the region's possible contents with
// a suffix array over old followed by new: a suffix in the old part is a
// source at the same region offset while its block is not yet written, one
// in the new part while its block is. The inverse array and the LCP array
// (Kasai et al. 2001) let a search start at new[scan:]'s own rank and read
// every neighbour's common prefix without a binary search or a byte
// comparison.
type matcher struct {
	old, new []byte
	t        []byte
	sa       []int32
	isa      []int32
	lcp      []int32 // lcp[i]: common prefix of the suffixes at ranks i-1 and i
}

func newMatcher(old, new []byte) *matcher {
	t := make([]byte, 0, len(old)+len(new))
	t = append(append(t, old...), new...)
	sa := suffixArray(t)
	isa, lcp := lcpArray(t, sa)
	return &matcher{old: old, new: new, t: t, sa: sa, isa: isa, lcp: lcp}
}

// lcpArray returns the inverse suffix array and the LCP array of t (Kasai,
// Lee, Arimura, Arikawa and Park: linear time, the common prefix shrinks by
// at most one from one text position to the next).
func lcpArray(t []byte, sa []int32) (isa, lcp []int32) {
	// In two halves at once: a half that starts with h = 0 only
	// compares more bytes.
	n := len(t)
	isa = make([]int32, n)
	lcp = make([]int32, n)
	parallel(2, func(half int) {
		for i := half * n / 2; i < (half+1)*n/2; i++ {
			isa[sa[i]] = int32(i)
		}
	})
	parallel(2, func(half int) {
		h := 0
		for i := half * n / 2; i < (half+1)*n/2; i++ {
			r := isa[i]
			if r == 0 {
				h = 0
				continue
			}
			j := int(sa[r-1])
			for i+h < n && j+h < n && t[i+h] == t[j+h] {
				h++
			}
			lcp[r] = int32(h)
			if h > 0 {
				h--
			}
		}
	})
	return isa, lcp
}

// searchWidth is how many suffix-array neighbours on each side of
// new[scan:] are tried (fewer when their common prefix is already shorter
// than the best match found).
var searchWidth = 12

// stepTrials are the match gain, search weight and jump-cost free bits
// that Make's step 2 tries besides (matchGains[0], 0, jumpFrees[0]), the
// plan of step 1. The weight w > 0 makes the search take the match of
// largest length - w*jumpCost(displacement change) rather than the longest.
// Chosen by leave-one-out over the seven shared pairs from the 12
// combinations of gains 4/3, weights 0/2/3 and free bits 4/3 (BENCH.md):
// any three of them chosen on six pairs lost 0.05% on the held-out pair
// on average against all twelve, any two 2.2% (one-line changes such as
// upy-pybv11-oneline want gain 4, relinked images gain 3, so both gains
// must be tried).
var stepTrials = [][3]int{{3, 2, 3}, {3, 3, 4}}

// matchGains are the values tried for by how many bytes a new match must
// beat the continuation of the current copy to start a new instruction
// (bsdiff uses 8 for bzip2); the first one picks the block order. Measured
// on the shared pairs, in-place, with jumpCost: gain 3 gives nrf52 37,585
// and pybv11 6,989, gain 4 37,724 and 6,078, gain 8 over 40,000 on nrf52;
// each pair gets the better of 4 and 3.
var matchGains = []int{4, 3}

// search returns the longest match of new[out:out+qn] readable at the
// view's step, its region offset and length; among equal lengths it
// prefers the displacement closest to pref (cheapest to code). With weight
// > 0 it returns the match of largest length - weight*jumpCost(displacement
// - pref) instead.
func (m *matcher) search(v *view, out, qn int, pref int64, weight, free int, reps *history) (int64, int) {
	sa, lcp := m.sa, m.lcp
	oldN := len(m.old)
	r := int(m.isa[oldN+out])
	bestPos, bestLen := int64(0), 0
	bestCost := int64(0)
	bestScore := 0
	try := func(i, common int) {
		s := int(sa[i])
		var x int64
		var fromNew bool
		limit := min(qn, common)
		if s < oldN {
			x = int64(s)
			limit = min(limit, oldN-s)
			if b := x / v.bs; v.isWritten(b) && v.h.stashSlot(b) >= 0 {
				x += v.region // the stash copy of a written block
			}
		} else {
			x, fromNew = int64(s-oldN), true
		}
		if limit == 0 || limit < bestLen && weight == 0 {
			return
		}
		l := m.clip(v, x, limit, fromNew)
		if l == 0 {
			return
		}
		cost := x - int64(out) - pref
		if cost < 0 {
			cost = -cost
		}
		if weight > 0 {
			score := l - weight*reps.jumpCost(x-int64(out), pref, free)
			if bestLen == 0 || score > bestScore || (l == bestLen && cost < bestCost) {
				bestPos, bestLen, bestCost, bestScore = x, l, cost, score
			}
			return
		}
		if l > bestLen || (l == bestLen && cost < bestCost) {
			bestPos, bestLen, bestCost = x, l, cost
		}
	}
	// Walk outwards from the query's own rank; the common prefix with
	// the query is the running minimum of the LCP array, which only
	// shrinks, so a side ends once it falls below what is found.
	common := qn
	for i := r + 1; i < min(len(sa), r+1+searchWidth); i++ {
		common = min(common, int(lcp[i]))
		if common == 0 || common < bestLen && weight == 0 || weight > 0 && bestLen > 0 && common < bestScore {
			break
		}
		try(i, common)
	}
	common = qn
	for i := r - 1; i >= max(0, r-searchWidth); i-- {
		common = min(common, int(lcp[i+1]))
		if common == 0 || common < bestLen && weight == 0 || weight > 0 && bestLen > 0 && common < bestScore {
			break
		}
		try(i, common)
	}
	return bestPos, bestLen
}

// clip shortens a source run of n bytes at region offset x to what the
// view's step may read from the old (fromNew false) or new image.
func (m *matcher) clip(v *view, x int64, n int, fromNew bool) int {
	h := v.h
	if !h.InPlace {
		if fromNew {
			return 0
		}
		return n
	}
	if x >= v.region {
		return v.validRun(x, n)
	}
	bs := int64(h.EraseBlock)
	end, lim := x, x+int64(n)
	for end < lim {
		b := end / bs
		if v.isWritten(b) != fromNew {
			break
		}
		ve := (b + 1) * bs
		if fromNew {
			ve = min(ve, int64(h.NewSize))
		} else {
			ve = min(ve, int64(h.OldSize))
		}
		if ve <= end {
			break
		}
		end = min(ve, lim)
	}
	return int(end - x)
}

// maxMatch caps the length of one search: binary-search comparisons cost
// up to the match length, and a longer match simply continues through the
// next search at the same displacement.
const maxMatch = 1 << 14

// jumpCost is the extra match length a copy must have when its
// displacement is far from the current one: coding a far displacement
// costs up to about 20 bits more than a near one, and short matches far
// away are found by chance. Measured on the shared pairs (in-place total
// of four): 128,862 bytes without it, 127,651 with jumpFree 4 and jumpDiv 4
// (neighbouring settings within 0.2%).
// jumpCost is the extra match length of a copy at displacement d after one
// at pref: nothing if d is one of the recent displacements (coded with a
// few bits), else jumpCost(d - pref).
func (h *history) jumpCost(d, pref int64, free int) int {
	if repDisps {
		for _, r := range h.reps[1:] {
			if r == d {
				return 0
			}
		}
	}
	return jumpCost(d-pref, free)
}

var repDisps = true

func jumpCost(delta int64, free int) int {
	return max(0, bits.Len64(zigzag(delta))-free) / jumpDiv
}

var jumpDiv = 4

// jumpFrees are the numbers of free bits of jumpCost tried (a trial each
// in Make's step 2; the first one plans the block order and the
// schedule): a displacement change of up to that many bits costs no match
// length. Measured on upy-esp8266 in place with its best schedule and
// model (stream bytes, gain 3, weights 0/1/2/3): 66,871/66,746/66,751/66,780
// with 4, 66,615/66,556/66,520/66,544 with 3, 5 and 6 no better; jumpDiv 3
// or 5 no better than 3 free bits.
var jumpFrees = []int{4, 3}

// validRun is how many bytes from source offset x on (at most n) step k
// may read, without crossing from the region into the stash space.
func (v *view) validRun(x int64, n int) int {
	if x < 0 {
		return 0
	}
	lim := x + int64(n)
	if x < v.region {
		lim = min(lim, v.region)
	}
	e := x
	for e < lim {
		ve := v.validEnd(e)
		if e >= ve {
			break
		}
		e = ve
	}
	return int(min(e-x, int64(n)))
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i+8 <= n && string(a[i:i+8]) == string(b[i:i+8]) {
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// plan runs a bsdiff-style scan (Percival's approximate-match extension:
// a copy continues through mismatching bytes while at least half its
// bytes match, the differences coding to mostly zeros) over each step's
// block, sourcing only from what the view of that step can read.
func (m *matcher) plan(h *Header, matchGain int) *plan {
	return m.planWeighted(h, matchGain, 0, jumpFrees[0])
}

// planWeighted is plan with the search's displacement weight (search).
func (m *matcher) planWeighted(h *Header, matchGain, weight, free int) *plan {
	p := &plan{h: h, steps: make([][]op, h.Steps)}
	newb := m.new
	lastDisp := int64(0)
	// hs follows the coder's recent displacements (history.reps).
	var hs history
	var stepDisp int64
	haveStepDisp := false
	for k := 0; k < h.Steps; k++ {
		// the displacement the step starts from, as the coder has it
		// (history.startStep)
		if k > 0 && haveStepDisp && h.blockAt(k-1) == h.blockAt(k)+1 {
			lastDisp = stepDisp
		}
		haveStepDisp = false
		off, n := target(h, k)
		bs, be := int(off), int(off)+n
		v := newView(h, k, m.old, newb)
		var ops []op
		scan, lastscan := bs, bs
		lastpos := int64(bs) + lastDisp
		lastoffset := lastDisp
		var pos int64
		ln := 0
		// contEnd bounds the continuation of the current copy: where its
		// source first becomes unreadable at this step, matches with the
		// same displacement can no longer extend it.
		contEnd := lastscan + v.validRun(lastpos, be-lastscan)
		for scan < be {
			oldscore := 0
			scan += ln
			scsc := scan
			for ; scan < be; scan++ {
				pos, ln = m.search(v, scan, min(be, scan+maxMatch)-scan, lastoffset, weight, free, &hs)
				for ; scsc < scan+ln; scsc++ {
					if scsc < contEnd && v.eq(int64(scsc)+lastoffset, newb[scsc]) {
						oldscore++
					}
				}
				if (ln == oldscore && ln != 0) || ln > oldscore+matchGain+hs.jumpCost(pos-int64(scan), lastoffset, free) {
					break
				}
				if scan < contEnd && v.eq(int64(scan)+lastoffset, newb[scan]) {
					oldscore--
				}
			}
			if ln != oldscore || scan == be {
				s, sf, lenf := 0, 0, 0
				for i := 0; lastscan+i < scan && v.valid(lastpos+int64(i)) && v.sameSide(lastpos, lastpos+int64(i)); {
					if v.at(lastpos+int64(i)) == newb[lastscan+i] {
						s++
					}
					i++
					if s*2-i > sf*2-lenf {
						sf, lenf = s, i
					}
				}
				lenb := 0
				if scan < be {
					s, sb := 0, 0
					for i := 1; scan >= lastscan+i && v.valid(pos-int64(i)) && v.sameSide(pos, pos-int64(i)); i++ {
						if v.at(pos-int64(i)) == newb[scan-i] {
							s++
						}
						if s*2-i > sb*2-lenb {
							sb, lenb = s, i
						}
					}
				}
				if lastscan+lenf > scan-lenb {
					overlap := (lastscan + lenf) - (scan - lenb)
					s, ss, lens := 0, 0, 0
					for i := 0; i < overlap; i++ {
						if newb[lastscan+lenf-overlap+i] == v.at(lastpos+int64(lenf-overlap+i)) {
							s++
						}
						if newb[scan-lenb+i] == v.at(pos-int64(lenb)+int64(i)) {
							s--
						}
						if s > ss {
							ss, lens = s, i+1
						}
					}
					lenf += lens - overlap
					lenb -= lens
				}
				lit := (scan - lenb) - (lastscan + lenf)
				if lenf > 0 || lit > 0 {
					ops = append(ops, op{out: lastscan, src: lastpos, copyLen: lenf, litLen: lit})
					if lenf > 0 {
						lastDisp = lastpos - int64(lastscan)
						hs.setDisp(lastDisp)
						if !haveStepDisp {
							stepDisp, haveStepDisp = lastDisp, true
						}
					}
				}
				lastscan = scan - lenb
				lastpos = pos - int64(lenb)
				lastoffset = pos - int64(scan)
				contEnd = lastscan + v.validRun(lastpos, be-lastscan)
			}
		}
		p.steps[k] = ops
	}
	return p
}
