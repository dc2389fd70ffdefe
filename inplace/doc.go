// Package inplace simulates NOR flash and installs delta packages in place
// on it, surviving a power cut at any moment.
//
// # The flash model (flash.go, flashfile.go)
//
// Flash is a NOR chip: erase sets a block to 0xFF, program can only clear
// bits (ErrProgramOneOverZero names the address otherwise), each block
// counts its erases against an endurance limit (ErrWornOut), and every
// operation adds typical W25Q-class SPI NOR time to a simulated clock.
// CutAfter(n, torn) drops the power after the nth erase or program; with
// torn that operation is left half done, as real NOR does. CreateFlash and
// OpenFlash keep the chip in a file written through on every operation, so
// a reboot is a new process opening the same file.
//
// # The device (layout.go, bootrecord.go, journal.go)
//
// LayoutFor divides the flash into two A/B boot record blocks, two journal
// blocks, the image region, a staging area for the package and a scratch
// block. The boot record (CRC, sequence number, written alternately) names
// the committed image, its SHA-256 and version, the device type and the
// Ed25519 key trusted to sign updates. The journal is append-only 64-byte
// records with CRC in fresh 0xFF slots; a full block is compacted by
// writing the newest record into the other one. A torn write of either
// fails its CRC and the previous state stands.
//
// # Installing (installer.go, boot.go)
//
// Install = Stage + Resume. Stage refuses a package before the flash
// changes unless its signature verifies against the boot record's key and
// it is an in-place package for this device type, erase block and old
// image (hashed afresh), fits the region, the staging area and the RAM
// budget, and its whole instruction stream decodes; then it copies the
// package into the staging area, copies the old blocks the package stashes
// (delta.Header.Stash: blocks that read each other in a cycle no write
// order satisfies) into the slots after it, reads both back, and journals
// the package as staged. Steps read the stash slots as a continuation of
// the image region (sourceReader); they are never erased until the next
// install, and the scratch rotation starts after them. Resume applies
// it one erase block per step: decode into the block buffer, write it to a
// scratch block, journal, erase and program the target, journal. After a
// cut, Boot resumes: a step whose scratch copy was journaled is finished
// from scratch (its sources may have been overwritten); any other step is
// decoded afresh (its target was never touched, or it reads nothing of its
// target: such steps skip the scratch copy). At the end the new image
// hash is checked, the boot record rewritten (commit), and the journal says
// committed; a mismatch is journaled as failed and never booted.
//
// A full-image package (delta.Make from an empty old image: OldSize 0)
// names no old image: Stage accepts it over whatever the region holds (the
// server's fallback when it does not know the running version), checking
// everything else as for a delta. None of its steps reads its own target,
// so all are written without scratch; once the first block is erased the
// old image is gone and Boot must finish the install (fullimage.go).
//
// A sealed package (delta/seal) is verified with the trusted key in one
// streamed pass, its content key unwrapped with Options.DeviceKey (one
// encrypted for other devices is refused then), and its delta stream
// decoded through a one-chunk decrypter, all before the flash changes; it
// is staged as it came, ciphertext, and every resume decrypts afresh. If
// it announces a new signing key the boot record trusts that key from the
// commit on (sealed.go).
//
// All working memory for flash data comes from one arena allocated at
// start (the device's budget in the boot record, default 16 KiB plus one
// erase block; Stage refuses what a resuming boot could not grant); Need
// reports the exact figure for a package: delta.ArenaSize, one erase block
// and 832 bytes of fixed buffers. BenchmarkPowerCutSweep prints it per
// firmware pair (13,506 to 15,554 bytes with 4 KiB blocks when written),
// beside bsdiff's old+new in RAM and detools' in-place applier (~8 MiB with
// LZMA).
package inplace
