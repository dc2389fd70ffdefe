package inplace

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fotastack/fota/delta"
)

var sweepPoints = flag.Int("sweep.points", 40, "cut points per firmware pair in BenchmarkPowerCutSweep (each tried clean and torn)")

// BenchmarkPowerCutSweep installs each real firmware pair of
// ../shared/firmware on a simulated 2 MiB SPI NOR (4 KiB sectors), then cuts
// the power at -sweep.points cut points spread evenly over the install's
// operations (staging and in place), clean and torn, reboots, boots and
// compares the image with new.bin. Run it with
//
//	go test -run '^$' -bench PowerCutSweep -benchtime 1x ./inplace
func BenchmarkPowerCutSweep(b *testing.B) {
	root := filepath.Join("..", "..", "shared", "firmware")
	dirs, err := os.ReadDir(root)
	if err != nil {
		b.Skipf("no firmware pairs at %s: %v", root, err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		old, err1 := os.ReadFile(filepath.Join(root, d.Name(), "old.bin"))
		new, err2 := os.ReadFile(filepath.Join(root, d.Name(), "new.bin"))
		if err1 != nil || err2 != nil {
			continue
		}
		b.Run(d.Name(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sweepPair(b, old, new)
			}
		})
	}
}

func sweepPair(b *testing.B, old, new []byte) {
	b.Helper()
	const eb = 4096
	patch := makePatch(b, old, new, eb, nil)
	hdr, err := delta.Parse(patch)
	if err != nil {
		b.Fatal(err)
	}
	geo := Geometry{Size: 2 << 20, EraseBlock: eb, PageSize: 256}
	base := provisioned(b, geo, old)
	l, _ := LayoutFor(geo)

	// One clean install: operations, time, wear.
	clean := base.Clone()
	start := clean.Stats()
	if _, err := Stage(clean, patch, Options{}); err != nil {
		b.Fatal(err)
	}
	rep, err := Resume(clean, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Equal(bootImage(b, clean), new) {
		b.Fatal("clean install: image differs from new.bin")
	}
	end := clean.Stats()
	total := int(end.Ops() - start.Ops())
	wearMax, wearSum, touched := 0, 0, 0
	for blk := 0; blk < geo.Blocks(); blk++ {
		c := clean.EraseCount(blk) - base.EraseCount(blk)
		if c > 0 {
			touched++
			wearSum += c
			wearMax = max(wearMax, c)
		}
	}
	imageBlocks := (len(new) + eb - 1) / eb
	// A plain full-image write erases each image block once and programs
	// every page of the new image.
	plainTime := time.Duration(imageBlocks)*eraseTime(eb) + time.Duration((len(new)+255)/256)*programTime(256)

	install := func(f *Flash) error { _, err := Install(f, patch, Options{}); return err }
	var r sweepResult
	pts := max(1, *sweepPoints)
	for p := 0; p < pts; p++ {
		k := 1 + p*(total-1)/max(1, pts-1)
		for _, torn := range []bool{false, true} {
			r.add(runCut(b, base, install, patch, old, new, k, torn, 0))
		}
	}
	fmt.Printf("%d -> %d bytes, package %d bytes (%.1f%%), %d steps (%d without scratch copy), %d flash ops\n",
		len(old), len(new), len(patch), 100*float64(len(patch))/float64(len(new)), hdr.Steps, rep.DirectSteps, total)
	fmt.Printf("  power cuts: %d tried (clean and torn), %d bricked, %d booted old (cut in staging) and re-installed\n", r.tried, r.bricked, r.oldThenRetried)
	fmt.Printf("  installer RAM: %d bytes (decoder %d + erase block %d + fixed %d); detools in-place ~8 MiB (LZMA) or ~1 KiB (heatshrink); bsdiff old+new %d bytes\n",
		rep.ArenaPeak, delta.ArenaSize(hdr), eb, rep.ArenaPeak-delta.ArenaSize(hdr)-eb, len(old)+len(new))
	fmt.Printf("  erases per block: max %d, mean %.2f over %d blocks erased (plain full-image write: max 1, mean 1 over %d blocks); scratch rotates over %d blocks\n",
		wearMax, float64(wearSum)/float64(touched), touched, imageBlocks, l.ScratchBlock-l.scratchFor(0, uint32(len(patch)), len(hdr.Stash))+1)
	fmt.Printf("  simulated update time %v (staging + in place + verify), plain full-image write %v\n",
		(end.SimTime - start.SimTime).Round(time.Millisecond), plainTime.Round(time.Millisecond))
	b.ReportMetric(float64(r.tried), "cuts")
	b.ReportMetric(float64(r.bricked), "bricked")
	b.ReportMetric(float64(rep.ArenaPeak), "RAM-bytes")
	b.ReportMetric(float64(wearMax), "max-erases/block")
	b.ReportMetric((end.SimTime - start.SimTime).Seconds(), "sim-s")
	if r.bricked != 0 {
		b.Errorf("%d of %d power-cut runs bricked", r.bricked, r.tried)
	}
}

// BenchmarkResume is the host cost of applying a staged package (decoder
// and flash model), per install.
func BenchmarkResume(b *testing.B) {
	old, new := smallPair()
	patch := makePatch(b, old, new, 4096, nil)
	base := provisioned(b, smallGeo, old)
	if _, err := Stage(base, patch, Options{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f := base.Clone()
		if _, err := Resume(f, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
