package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
)

// defaultDemoPair is the firmware pair the demo prefers: MicroPython for
// the pyboard v1.1 with a one-line change, two real 320 KB images.
const defaultDemoPair = "upy-pybv11-oneline"

// demoFirmware is the image pair a demo runs: v1 on the devices, v2 the
// campaign's target.
type demoFirmware struct {
	Source string // where the pair came from, for the user
	V1, V2 []byte
}

// firmwareDirCandidates lists where ../shared/firmware may be, best first:
// the --firmware-dir flag or $FOTA_FIRMWARE_DIR, then beside the current
// directory (a checkout's root), then beside the module root this binary
// was built from (the source path the compiler recorded; absent with
// -trimpath), then beside the executable's directory.
func firmwareDirCandidates(explicit string) []string {
	var c []string
	if explicit != "" {
		return []string{explicit}
	}
	if d := os.Getenv("FOTA_FIRMWARE_DIR"); d != "" {
		c = append(c, d)
	}
	c = append(c, filepath.Join("..", "shared", "firmware"))
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		// file is <module root>/cmd/fota/demo_firmware.go.
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		c = append(c, filepath.Join(root, "..", "shared", "firmware"))
	}
	if exe, err := os.Executable(); err == nil {
		c = append(c, filepath.Join(filepath.Dir(exe), "..", "shared", "firmware"))
	}
	return c
}

// loadDemoFirmware reads pair (old.bin, new.bin) from the first firmware
// directory that has it; with pair empty, the default pair or else the
// smallest one there. ok is false when no directory has a usable pair.
func loadDemoFirmware(dirs []string, pair string) (fw demoFirmware, ok bool, err error) {
	for _, dir := range dirs {
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() {
			continue
		}
		name := pair
		if name == "" {
			name = pickPair(dir)
		}
		if name == "" {
			continue
		}
		p := filepath.Join(dir, name)
		v1, err1 := os.ReadFile(filepath.Join(p, "old.bin"))
		v2, err2 := os.ReadFile(filepath.Join(p, "new.bin"))
		if err := errors.Join(err1, err2); err != nil {
			if pair != "" {
				return demoFirmware{}, false, fmt.Errorf("firmware pair %s: %w", p, err)
			}
			continue
		}
		return demoFirmware{Source: p, V1: v1, V2: v2}, true, nil
	}
	if pair != "" {
		return demoFirmware{}, false, fmt.Errorf("firmware pair %q not found in %v", pair, dirs)
	}
	return demoFirmware{}, false, nil
}

// pickPair returns the default pair if dir has it, else the pair with the
// smallest new.bin, else "".
func pickPair(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, defaultDemoPair, "new.bin")); err == nil {
		return defaultDemoPair
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	type cand struct {
		name string
		size int64
	}
	var cs []cand
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		st, err := os.Stat(filepath.Join(dir, e.Name(), "new.bin"))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "old.bin")); err != nil {
			continue
		}
		cs = append(cs, cand{e.Name(), st.Size()})
	}
	if len(cs) == 0 {
		return ""
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].size < cs[j].size })
	return cs[0].name
}

// synthFunction is one function of a synthetic firmware: its body of
// 16-bit instructions and the functions it calls.
type synthFunction struct {
	body  []uint16
	calls []int // indexes of callees; a 4-byte call follows the body for each
}

// generateDemoFirmware makes a realistic synthetic image pair of about
// size bytes when no real pair is at hand. It looks like Thumb code: each
// function is a push prologue, instructions from a small vocabulary with
// small immediates, PC-relative 4-byte calls to other functions and a pop
// epilogue; after the code, a table of absolute pointers (a vector table
// and constant pool, base 0x08000000). v2 is v1 with a few functions
// changed, three inserted in the first third, one removed: every function
// after an insertion moves, so call offsets and pointers change all over
// the image, as in a real rebuild. That is what a delta has to handle.
func generateDemoFirmware(size int, seed uint64) demoFirmware {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// The vocabulary: mov, add, sub, cmp, ldr, str, b<cond>, lsl with an
	// 8-bit immediate or register field, as Thumb encodes them.
	ops := []uint16{0x2000, 0x3000, 0x3800, 0x2800, 0x6800, 0x6000, 0xd000, 0x0000, 0x4600, 0x1c00}
	newFunc := func(nfuncs int) synthFunction {
		n := 8 + rng.IntN(120)
		f := synthFunction{body: make([]uint16, n)}
		for i := range f.body {
			f.body[i] = ops[rng.IntN(len(ops))] | uint16(rng.IntN(64))
		}
		for k := rng.IntN(4); k > 0; k-- {
			f.calls = append(f.calls, rng.IntN(nfuncs))
		}
		return f
	}
	// About 2+2*68+4*1.5+4 bytes a function on average.
	nf := max(8, size/150)
	funcs := make([]synthFunction, nf)
	for i := range funcs {
		funcs[i] = newFunc(nf)
	}
	v1 := layoutSynth(funcs)
	// v2: change five functions, insert three, remove one.
	v2f := append([]synthFunction(nil), funcs...)
	for k := 0; k < 5; k++ {
		i := rng.IntN(len(v2f))
		f := v2f[i]
		f.body = append([]uint16(nil), f.body...)
		for j := 0; j < 1+len(f.body)/10; j++ {
			f.body[rng.IntN(len(f.body))] = ops[rng.IntN(len(ops))] | uint16(rng.IntN(64))
		}
		v2f[i] = f
	}
	for k := 0; k < 3; k++ {
		at := rng.IntN(max(1, len(v2f)/3))
		v2f = append(v2f[:at], append([]synthFunction{newFunc(len(funcs))}, v2f[at:]...)...)
	}
	del := len(v2f)/2 + rng.IntN(len(v2f)/4)
	v2f = append(v2f[:del], v2f[del+1:]...)
	for i := range v2f {
		// Callees index the original list; keep them in range after the
		// removal.
		calls := append([]int(nil), v2f[i].calls...)
		for j := range calls {
			calls[j] %= len(v2f)
		}
		v2f[i].calls = calls
	}
	v2 := layoutSynth(v2f)
	return demoFirmware{Source: fmt.Sprintf("generated (synthetic Thumb-like code, %d and %d bytes)", len(v1), len(v2)), V1: v1, V2: v2}
}

// layoutSynth places the functions one after another and writes them,
// then the pointer table.
func layoutSynth(funcs []synthFunction) []byte {
	const base = 0x08000000
	addr := make([]int, len(funcs))
	off := 0
	for i, f := range funcs {
		addr[i] = off
		off += 2 + 2*len(f.body) + 4*len(f.calls) + 2
	}
	out := make([]byte, 0, off+4*len(funcs))
	for _, f := range funcs {
		out = binary.LittleEndian.AppendUint16(out, 0xb5f0) // push {r4-r7, lr}
		for _, ins := range f.body {
			out = binary.LittleEndian.AppendUint16(out, ins)
		}
		for _, c := range f.calls {
			// A BL-like pair: a marker and the 16-bit-aligned distance.
			rel := (addr[c] - len(out)) / 2
			out = binary.LittleEndian.AppendUint16(out, 0xf000|uint16(rel>>16)&0x7ff)
			out = binary.LittleEndian.AppendUint16(out, 0xf800|uint16(rel)&0x7ff)
		}
		out = binary.LittleEndian.AppendUint16(out, 0xbdf0) // pop {r4-r7, pc}
	}
	for i := range funcs {
		out = binary.LittleEndian.AppendUint32(out, uint32(base+addr[i])|1)
	}
	return out
}
