// Package delta makes and applies compact, signed delta packages between
// firmware images, made for in-place installation on a device with one
// flash slot and a few KiB of RAM.
//
// # Making and applying
//
//	pkg, err := delta.Make(old, new, delta.Options{InPlace: true, EraseBlock: 4096, RAM: 16384, Key: priv})
//	out, err := delta.Apply(old, pkg, pub)              // host side, any mode
//	err = delta.ApplyInPlace(region, pkg, pub)          // in place, step by step
//
// Make finds matches of the new image in what the device can read (a
// suffix array over old and new, bsdiff-style approximate extension so that
// a copy runs through a few changed bytes) and codes the instructions, the
// difference bytes and the literal bytes with an adaptive binary range
// coder (format.go, model.go). Relocated code costs little: differences are
// modelled per byte lane with "same as the last non-zero difference in
// this lane" and "same as the last non-zero difference" flags, and
// optionally taken word-wise so that pointers that all moved by one offset
// give one repeated difference. Sparsely used contexts adapt by a per-
// probability use count (rangecoder.go), in 4 bits of arena each. A copy
// may name one of the last eight displacements instead of coding a
// change; per package, flags choose difference trees by the pattern of
// recent non-zero differences and literal trees by offset parity (for
// code whose instructions are not word aligned).
//
// # In place
//
// An in-place package writes the new image over the old one in the same
// flash region, one erase block per step, in ascending or descending block
// order or in a schedule (whichever gives the smaller package). While step
// k is decoded the generator only lets it read old bytes of blocks not yet
// written and new bytes of blocks already written; the player checks that
// too. A schedule (schedule.go) is a block order of up to MaxRuns runs,
// chosen by local search over the copy-read/write-interference graph of
// the unconstrained plan so that few copies lose their source, and a stash
// of up to MaxStash old blocks (Options.Stash, 32 KiB by default) that the
// installer copies into its staging area before the first step: blocks
// that read each other in a cycle, which no order can satisfy, read the
// stash copy instead (format.go). The device
// decodes each step with an InPlacePlayer whose memory is an arena of
// ArenaSize(hdr) bytes (Header.RAMBudget) plus the installer's erase-block
// buffer. After a power cut the installer, which journals finished steps,
// resumes with SkipTo: all decoder contexts come from the stream itself,
// never from flash, so re-decoding from the start without flash reads
// rebuilds the state exactly. That includes what the player carries from
// one step to the next (the last copy's displacement, the previous step's
// first one, which a copy across the block boundary continues at almost
// no cost: format.go, cont).
//
//	hdr, err := delta.Verify(pkg, pub)
//	p, err := delta.NewInPlacePlayer(bytes.NewReader(pkg), hdr, arena)
//	// (before the first step: copy hdr.Stash's old blocks into the stash slots)
//	p.SkipTo(journal.DoneSteps())
//	for p.Step() < hdr.Steps {
//		off, n := p.Target(p.Step())
//		p.Next(source, block)   // region + stash slots; decode block p.Step() into block[:n]
//		// journal the block, erase and program it at off, journal "done"
//	}
//
// # Signing
//
// Packages carry an Ed25519 signature over all preceding bytes; Verify
// and Apply refuse a package that does not verify. DefaultKeyPath and
// LoadOrCreateKey manage the signing key of the command line; Sign and
// MakeSigned sign with any Ed25519 crypto.Signer, such as an HSM's
// (delta/signer). delta/seal wraps a package for encryption to devices and
// signing-key rotation.
package delta
