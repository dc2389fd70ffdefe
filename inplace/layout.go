package inplace

import (
	"fmt"
)

// Layout is how the device divides its flash. Every region is whole erase
// blocks, so that erasing one never touches another:
//
//	block 0, 1      boot record, A and B (bootrecord.go): the committed image
//	                 and the trusted key; written alternately, so a torn
//	                 write leaves the other copy valid
//	block 2, 3      progress journal, A and B (journal.go): append-only
//	                 records; the next block is erased only when one fills
//	block 4 ..      image region: the image the device runs, patched in place
//	..              staging area: the signed package, copied in before the
//	                 first image byte changes, so that boot can resume; after
//	                 it, the stash slots: the old blocks the package asks to
//	                 keep (delta.Header.Stash), copied with it
//	last block      scratch: one decoded block waits here before its target
//	                 is erased (installer.go)
//
// Every step erases a scratch block once, so a single scratch block would
// take Steps erases per update while image blocks take one. The installer
// therefore rotates its scratch over the staging blocks the package and
// its stash leave free and the last block (scratchFor), which are
// contiguous.
//
// The blocks between the fixed areas are split three to one between image
// and staging: a delta package is a small fraction of an image (5-25% on
// the pairs in ../shared/firmware), and the image region must hold the
// larger of old and new.
type Layout struct {
	EraseBlock    int
	BootBlocks    [2]int // erase block indexes of boot record A and B
	JournalBlocks [2]int // erase block indexes of journal A and B
	ImageStart    int64  // byte address of the image region
	ImageSize     int    // bytes
	StagingStart  int64  // byte address of the staging area
	StagingSize   int    // bytes
	ScratchBlock  int    // erase block index of the scratch block
}

// minBlocks is the smallest flash the layout fits: four metadata blocks,
// scratch, and at least two image blocks and one staging block.
const minBlocks = 8

// LayoutFor computes the layout of a flash of geometry g.
func LayoutFor(g Geometry) (Layout, error) {
	g = g.withDefaults()
	if err := g.validate(); err != nil {
		return Layout{}, fmt.Errorf("layout: %w", err)
	}
	n := g.Blocks()
	if n < minBlocks {
		return Layout{}, fmt.Errorf("layout: flash of %d erase blocks, need at least %d", n, minBlocks)
	}
	free := n - 5
	staging := max(1, free/4)
	image := free - staging
	b := g.EraseBlock
	return Layout{
		EraseBlock:    b,
		BootBlocks:    [2]int{0, 1},
		JournalBlocks: [2]int{2, 3},
		ImageStart:    int64(4 * b),
		ImageSize:     image * b,
		StagingStart:  int64((4 + image) * b),
		StagingSize:   staging * b,
		ScratchBlock:  n - 1,
	}, nil
}

// ImageBlock is the erase block index holding image region offset off.
func (l Layout) ImageBlock(off int64) int {
	return int((l.ImageStart + off) / int64(l.EraseBlock))
}

// stashBlock is the erase block of stash slot i while a package of
// patchLen bytes is staged: the slots follow the package.
func (l Layout) stashBlock(i int, patchLen uint32) int {
	return int(l.StagingStart)/l.EraseBlock + (int(patchLen)+l.EraseBlock-1)/l.EraseBlock + i
}

// scratchFor is the erase block that holds step k's scratch copy while a
// package of patchLen bytes with stash slots is staged: step k uses free
// block k mod free, counting from the first staging block after the
// package and its stash to the last block of the flash.
func (l Layout) scratchFor(k int, patchLen uint32, stash int) int {
	first := l.stashBlock(stash, patchLen)
	free := l.ScratchBlock - first + 1
	return first + k%free
}

// String describes the layout for `fota flash info`.
func (l Layout) String() string {
	b := int64(l.EraseBlock)
	return fmt.Sprintf("boot records blocks %d,%d; journal blocks %d,%d; image 0x%x..0x%x (%d KiB); staging 0x%x..0x%x (%d KiB); scratch block %d at 0x%x",
		l.BootBlocks[0], l.BootBlocks[1], l.JournalBlocks[0], l.JournalBlocks[1],
		l.ImageStart, l.ImageStart+int64(l.ImageSize), l.ImageSize/1024,
		l.StagingStart, l.StagingStart+int64(l.StagingSize), l.StagingSize/1024,
		l.ScratchBlock, int64(l.ScratchBlock)*b)
}
