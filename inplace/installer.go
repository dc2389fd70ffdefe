package inplace

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/seal"
)

// Errors of the installer that callers branch on. Package errors from the
// delta decoder (delta.ErrSignature, delta.ErrFormat, delta.ErrOldImage)
// come through wrapped.
var (
	ErrInProgress   = errors.New("an update is in progress: boot to finish it first")
	ErrNothingToDo  = errors.New("no update in progress")
	ErrDeviceType   = errors.New("package is for another device type")
	ErrRollback     = errors.New("package sequence number is below the running image's")
	ErrDoesNotFit   = errors.New("package does not fit the flash layout")
	ErrUpdateFailed = errors.New("update failed: the result does not match the package's new image hash; image region not bootable")
	ErrStaging      = errors.New("staged package does not match its journal record")
)

// Options tune Install and Resume.
type Options struct {
	// RAMBudget is the working memory the installer may use, allocated
	// once at start; 0 means the device's (the boot record's RAMBudget,
	// by default DefaultRAMBudget plus one erase block). Stage also refuses
	// a package that needs more than the device's, since the boot that may
	// have to resume it grants only that.
	RAMBudget int
	// Progress, if set, is called after each step with the steps done and
	// the total.
	Progress func(done, total int)
	// DeviceKey is the device's X25519 key that sealed packages are
	// encrypted to (delta/seal). It lives in the device's secure storage,
	// not in the flash this package models; without it an encrypted
	// package is refused (seal.ErrNoDeviceKey).
	DeviceKey *ecdh.PrivateKey
}

// DefaultRAMBudget is the installer's memory besides one erase-block buffer.
const DefaultRAMBudget = 16 << 10

// Fixed working buffers besides the decoder's arena and the block buffer.
const (
	headerPrefix = 512 // package header read back from staging (the header is < 480 bytes, schedule included)
	ioBufSize    = 256 // hashing and verifying flash contents
)

// DefaultDecoderRAM is the most decoder arena (delta.Options.RAM,
// delta.ArenaSize) a package may need to install on a device with the
// default budget: DefaultRAMBudget less the fixed buffers (the erase-block
// buffer comes on top of DefaultRAMBudget). delta.DefaultRAM is the same
// figure, so a package made with the generator's defaults installs on a
// device with the installer's defaults.
const DefaultDecoderRAM = DefaultRAMBudget - recordSize - ioBufSize - headerPrefix

// Need is the exact working memory the installer takes from its arena for
// a package: the decoder's (delta.ArenaSize), one erase block, and the
// fixed buffers (journal record, I/O buffer, header). A sealed, encrypted
// package takes one chunk more (seal.Header.RAM).
func Need(hdr *delta.Header) int {
	return delta.ArenaSize(hdr) + int(hdr.EraseBlock) + recordSize + ioBufSize + headerPrefix
}

func (o Options) budget(rec *BootRecord, eraseBlock int) int {
	if o.RAMBudget > 0 {
		return o.RAMBudget
	}
	return deviceBudget(rec, eraseBlock)
}

func deviceBudget(rec *BootRecord, eraseBlock int) int {
	if rec.RAMBudget > 0 {
		return int(rec.RAMBudget)
	}
	return DefaultRAMBudget + eraseBlock
}

// Report says what an install or resume did.
type Report struct {
	Version    string        // version of the new image
	Steps      int           // steps of the package
	FirstStep  int           // first step this call performed (0 for a fresh install)
	Resumed    bool          // the call continued an interrupted update
	ArenaSize  int           // bytes of working memory allocated at start (the budget)
	ArenaPeak  int           // bytes of it actually taken: the installer's peak RAM for flash data
	Ops        int64         // flash erase and program operations of this call
	SimTime    time.Duration // simulated flash time of this call
	PatchBytes int
	// DirectSteps is how many steps read nothing of their own target
	// block and so were written without the scratch copy.
	DirectSteps int
}

// Install verifies patch and applies it in place: Stage, then Resume.
func Install(f *Flash, patch []byte, opts Options) (Report, error) {
	if _, err := Stage(f, patch, opts); err != nil {
		return Report{}, err
	}
	rep, err := Resume(f, opts)
	rep.Resumed = false
	return rep, err
}

// Stage checks everything about patch that can be checked before the image
// changes, and only then copies it into the staging area and journals it
// as staged. Checks, in order: no update in progress; the signature against
// the boot record's trusted key; an in-place package for this device type,
// not a rollback; erase block, image region and staging area sizes; the
// RAM budget; the old image (the boot record's hash and a fresh SHA-256 of
// the image region's first OldSize bytes; a full-image package, OldSize 0,
// names none: fullimage.go); and the structure of the whole
// instruction stream (decoded once without output). A refused package
// leaves the flash untouched. Then the package and its stash (stashOld)
// are copied and read back. A power cut during the copies leaves the
// journal as it was: the device boots the old image.
func Stage(f *Flash, patch []byte, opts Options) (*delta.Header, error) {
	l, err := LayoutFor(f.Geometry())
	if err != nil {
		return nil, err
	}
	rec, _, err := readBootRecord(f, l)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	a := newArena(opts.budget(rec, l.EraseBlock))
	jbuf, err := a.take(recordSize, "journal record")
	if err != nil {
		return nil, err
	}
	j, err := OpenJournal(f, l, jbuf)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	if j.Last().State.inProgress() {
		return nil, fmt.Errorf("stage: journal %s: %w", j.Last().State, ErrInProgress)
	}
	iobuf, err := a.take(ioBufSize, "I/O buffer")
	if err != nil {
		return nil, err
	}
	pk, err := verifyPackage(patch, rec.TrustedKey, opts, a, iobuf)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	hdr := pk.hdr
	if err := checkHeader(hdr, rec, l, len(patch)); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	if need, budget := pk.ram(), min(len(a.buf), deviceBudget(rec, l.EraseBlock)); need > budget {
		return nil, fmt.Errorf("stage: package needs %d bytes of installer RAM, budget %d: %w", need, budget, ErrRAMBudget)
	}
	sum, err := hashFlash(f, l.ImageStart, int64(hdr.OldSize), iobuf)
	if err != nil {
		return nil, fmt.Errorf("stage: hash old image: %w", err)
	}
	if sum != hdr.OldHash {
		return nil, fmt.Errorf("stage: image region's SHA-256 is not the package's old image: %w", delta.ErrOldImage)
	}
	parena, err := a.take(delta.ArenaSize(hdr), "decoder")
	if err != nil {
		return nil, err
	}
	p, err := delta.NewInPlacePlayer(pk.payload, hdr, parena)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	if err := p.SkipTo(hdr.Steps); err != nil {
		return nil, fmt.Errorf("stage: package stream: %w", err)
	}
	if err := checkPayload(pk); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}

	// Everything checked: the flash changes from here.
	eb := l.EraseBlock
	first := int(l.StagingStart) / eb
	for b := 0; b < (len(patch)+eb-1)/eb; b++ {
		if err := f.Erase(first + b); err != nil {
			return nil, fmt.Errorf("stage: erase staging: %w", err)
		}
	}
	if err := programSkippingErased(f, l.StagingStart, patch); err != nil {
		return nil, fmt.Errorf("stage: copy package: %w", err)
	}
	staged, err := hashFlash(f, l.StagingStart, int64(len(patch)), iobuf)
	if err != nil {
		return nil, fmt.Errorf("stage: read back: %w", err)
	}
	want := sha256.Sum256(patch)
	if staged != want {
		return nil, fmt.Errorf("stage: staging area reads back differently: %w", ErrStaging)
	}
	if err := stashOld(f, l, hdr, uint32(len(patch)), iobuf); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	if err := j.Append(Record{State: StateStaged, PatchLen: uint32(len(patch)), PatchHash: want, Steps: uint32(hdr.Steps)}); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	return hdr, nil
}

// stashOld copies the old blocks the package stashes (hdr.Stash) into
// their slots after the staged package, through buf, and reads them back.
// It runs before the journal says staged: a cut leaves the journal as it
// was and the old image untouched.
func stashOld(f *Flash, l Layout, hdr *delta.Header, patchLen uint32, buf []byte) error {
	eb := int64(l.EraseBlock)
	for i, b := range hdr.Stash {
		slot := l.stashBlock(i, patchLen)
		if err := f.Erase(slot); err != nil {
			return fmt.Errorf("erase stash slot %d: %w", i, err)
		}
		from, n := l.ImageStart+int64(b)*eb, min(eb, int64(hdr.OldSize)-int64(b)*eb)
		to := int64(slot) * eb
		src, dst := sha256.New(), sha256.New()
		for o := int64(0); o < n; o += int64(len(buf)) {
			c := buf[:min(int64(len(buf)), n-o)]
			if _, err := f.ReadAt(c, from+o); err != nil {
				return fmt.Errorf("read old block %d: %w", b, err)
			}
			src.Write(c)
			if err := programSkippingErased(f, to+o, c); err != nil {
				return fmt.Errorf("stash old block %d: %w", b, err)
			}
		}
		for o := int64(0); o < n; o += int64(len(buf)) {
			c := buf[:min(int64(len(buf)), n-o)]
			if _, err := f.ReadAt(c, to+o); err != nil {
				return fmt.Errorf("read back stash slot %d: %w", i, err)
			}
			dst.Write(c)
		}
		if !bytes.Equal(src.Sum(nil), dst.Sum(nil)) {
			return fmt.Errorf("stash slot %d reads back differently: %w", i, ErrStaging)
		}
	}
	return nil
}

// checkHeader holds the package's claims against the device.
func checkHeader(hdr *delta.Header, rec *BootRecord, l Layout, patchLen int) error {
	switch {
	case !hdr.InPlace:
		return fmt.Errorf("a sequential package cannot be applied in place: %w", delta.ErrFormat)
	case hdr.DeviceType != rec.DeviceType:
		return fmt.Errorf("package device type %q, device %q: %w", hdr.DeviceType, rec.DeviceType, ErrDeviceType)
	case hdr.SeqNo < rec.SeqNo:
		return fmt.Errorf("package sequence %d, running %d: %w", hdr.SeqNo, rec.SeqNo, ErrRollback)
	case int(hdr.EraseBlock) != l.EraseBlock:
		return fmt.Errorf("package made for %d-byte erase blocks, flash has %d: %w", hdr.EraseBlock, l.EraseBlock, ErrDoesNotFit)
	case hdr.NewSize == 0:
		return fmt.Errorf("package makes an empty image: %w", ErrDoesNotFit)
	case int64(hdr.Region()) > int64(l.ImageSize):
		return fmt.Errorf("package needs a %d-byte image region, flash has %d: %w", hdr.Region(), l.ImageSize, ErrDoesNotFit)
	case patchLen > l.StagingSize:
		return fmt.Errorf("package of %d bytes, staging area %d: %w", patchLen, l.StagingSize, ErrDoesNotFit)
	case (patchLen+l.EraseBlock-1)/l.EraseBlock+len(hdr.Stash) > l.StagingSize/l.EraseBlock:
		return fmt.Errorf("package of %d bytes and %d stashed blocks, staging area %d: %w", patchLen, len(hdr.Stash), l.StagingSize, ErrDoesNotFit)
	}
	return CheckBase(hdr, rec)
}

// Resume carries a staged or interrupted update to its end. Per step k it
// decodes the block into the RAM buffer (reading sources from the image
// region), writes it to the scratch block, journals "scratch holds k",
// erases and programs the target, and journals "k done". After a cut:
//   - last record "k done" (or "staged"): step k+1 (0) is decoded afresh;
//     its target was not touched yet, so every source it reads is intact.
//   - last record "scratch holds k": the target may be half erased, and k's
//     sources may have been in it, so k is never decoded again: the scratch
//     block (checked against the record's CRC) is copied to the target.
//
// A step that reads nothing of its own target block skips the scratch
// copy: a cut while its target is written leaves "k-1 done", and decoding
// k again reads the same untouched blocks (the decoder's read positions
// come from the stream alone, never from flash contents), so it is written
// straight to its target.
//
// At the end the image region's SHA-256 must equal the package's new image
// hash; then the boot record is rewritten (commit) and the journal says
// committed. On a mismatch the journal says failed and ErrUpdateFailed is
// returned.
func Resume(f *Flash, opts Options) (rep Report, err error) {
	start := f.Stats()
	defer func() {
		s := f.Stats()
		rep.Ops, rep.SimTime = s.Ops()-start.Ops(), s.SimTime-start.SimTime
	}()
	l, err := LayoutFor(f.Geometry())
	if err != nil {
		return rep, err
	}
	rec, _, err := readBootRecord(f, l)
	if err != nil {
		return rep, fmt.Errorf("resume: %w", err)
	}
	a := newArena(opts.budget(rec, l.EraseBlock))
	rep.ArenaSize = len(a.buf)
	defer func() { rep.ArenaPeak = a.used }()
	jbuf, err := a.take(recordSize, "journal record")
	if err != nil {
		return rep, err
	}
	j, err := OpenJournal(f, l, jbuf)
	if err != nil {
		return rep, fmt.Errorf("resume: %w", err)
	}
	last := j.Last()
	if !last.State.inProgress() {
		return rep, fmt.Errorf("resume: journal %s: %w", last.State, ErrNothingToDo)
	}
	iobuf, err := a.take(ioBufSize, "I/O buffer")
	if err != nil {
		return rep, err
	}
	pk, err := stagedPackage(f, l, last, rec.TrustedKey, opts, a, iobuf)
	if err != nil {
		return rep, fmt.Errorf("resume: %w", err)
	}
	hdr := pk.hdr
	rep.Version, rep.Steps, rep.PatchBytes = hdr.Version, hdr.Steps, int(last.PatchLen)
	parena, err := a.take(delta.ArenaSize(hdr), "decoder")
	if err != nil {
		return rep, err
	}
	block, err := a.take(l.EraseBlock, "block buffer")
	if err != nil {
		return rep, err
	}
	p, err := delta.NewInPlacePlayer(pk.payload, hdr, parena)
	if err != nil {
		return rep, fmt.Errorf("resume: %w", err)
	}
	src := &sourceReader{f: f, image: l.ImageStart, region: int64(hdr.Region()),
		stash: int64(l.stashBlock(0, last.PatchLen)) * int64(l.EraseBlock), stashSize: int64(len(hdr.Stash)) * int64(l.EraseBlock)}

	k := 0
	switch last.State {
	case StateDone:
		k = int(last.Step) + 1
	case StateScratch:
		k = int(last.Step)
		n := int(last.ScratchLen)
		off, want := p.Target(k)
		if k >= hdr.Steps || n != want {
			return rep, fmt.Errorf("resume: scratch record for step %d (%d bytes) does not fit the package: %w", k, n, ErrStaging)
		}
		if _, err := f.ReadAt(block[:n], int64(l.scratchFor(k, last.PatchLen, len(hdr.Stash))*l.EraseBlock)); err != nil {
			return rep, fmt.Errorf("resume: read scratch: %w", err)
		}
		if crc32.ChecksumIEEE(block[:n]) != last.ScratchCRC {
			return rep, fmt.Errorf("resume: scratch block fails its CRC for step %d: %w", k, ErrStaging)
		}
		if err := writeBlock(f, l.ImageBlock(int64(off)), block[:n]); err != nil {
			return rep, fmt.Errorf("resume: step %d from scratch: %w", k, err)
		}
		if err := j.Append(Record{State: StateDone, Step: uint32(k), PatchLen: last.PatchLen, PatchHash: last.PatchHash, Steps: last.Steps}); err != nil {
			return rep, fmt.Errorf("resume: %w", err)
		}
		k++
	}
	rep.FirstStep, rep.Resumed = k, last.State != StateStaged
	if err := p.SkipTo(k); err != nil {
		return rep, fmt.Errorf("resume: %w", err)
	}
	watch := &targetWatch{r: src}
	for ; k < hdr.Steps; k++ {
		off, n := p.Target(k)
		watch.arm(int64(off), int64(off)+int64(l.EraseBlock))
		if err := p.Next(watch, block); err != nil {
			return rep, fmt.Errorf("resume: decode: %w", err)
		}
		r := Record{Step: uint32(k), PatchLen: last.PatchLen, PatchHash: last.PatchHash, Steps: last.Steps}
		if watch.hit {
			// The step read its own target: once the target is erased it
			// cannot be decoded again, so it goes through scratch first.
			if err := writeBlock(f, l.scratchFor(k, last.PatchLen, len(hdr.Stash)), block[:n]); err != nil {
				return rep, fmt.Errorf("resume: step %d to scratch: %w", k, err)
			}
			r.State, r.ScratchLen, r.ScratchCRC = StateScratch, uint32(n), crc32.ChecksumIEEE(block[:n])
			if err := j.Append(r); err != nil {
				return rep, fmt.Errorf("resume: %w", err)
			}
		} else {
			rep.DirectSteps++
		}
		if err := writeBlock(f, l.ImageBlock(int64(off)), block[:n]); err != nil {
			return rep, fmt.Errorf("resume: step %d to its block: %w", k, err)
		}
		r.State, r.ScratchLen, r.ScratchCRC = StateDone, 0, 0
		if err := j.Append(r); err != nil {
			return rep, fmt.Errorf("resume: %w", err)
		}
		if opts.Progress != nil {
			opts.Progress(k+1, hdr.Steps)
		}
	}
	return rep, commit(f, l, j, hdr, last, iobuf, pk.trustAfter(rec.TrustedKey))
}

// sourceReader is what a step's copies read (delta.Header.SourceSize): the
// image region, then the stash slots after the staged package.
type sourceReader struct {
	f                *Flash
	image, region    int64 // image region address and size
	stash, stashSize int64 // stash slots address and size
}

func (s *sourceReader) ReadAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	switch {
	case off >= 0 && end <= s.region:
		return s.f.ReadAt(p, s.image+off)
	case off >= s.region && end <= s.region+s.stashSize:
		return s.f.ReadAt(p, s.stash+off-s.region)
	}
	return 0, fmt.Errorf("source read %d+%d outside the %d-byte region and %d-byte stash: %w", off, len(p), s.region, s.stashSize, ErrOutOfRange)
}

// targetWatch passes reads through to the image region and notes whether
// any touched the current step's target block [lo, hi).
type targetWatch struct {
	r      io.ReaderAt
	lo, hi int64
	hit    bool
}

func (w *targetWatch) arm(lo, hi int64) { w.lo, w.hi, w.hit = lo, hi, false }

func (w *targetWatch) ReadAt(b []byte, off int64) (int, error) {
	if off < w.hi && off+int64(len(b)) > w.lo {
		w.hit = true
	}
	return w.r.ReadAt(b, off)
}

// stagedPackage reads the staged package back, checks it against its
// journal record (length and SHA-256, streamed through iobuf) and opens it:
// a sealed package through openSealed, a delta package by its header (the
// first bytes, read into a buffer from the arena). The signature was
// checked before staging; the hash ties the staged bytes to that check.
func stagedPackage(f *Flash, l Layout, last Record, trusted ed25519.PublicKey, opts Options, a *arena, iobuf []byte) (*pkg, error) {
	if int(last.PatchLen) > l.StagingSize {
		return nil, fmt.Errorf("journal names a %d-byte package, staging holds %d: %w", last.PatchLen, l.StagingSize, ErrStaging)
	}
	sum, err := hashFlash(f, l.StagingStart, int64(last.PatchLen), iobuf)
	if err != nil {
		return nil, fmt.Errorf("hash staged package: %w", err)
	}
	if sum != last.PatchHash {
		return nil, fmt.Errorf("staged package hash differs from the journal's: %w", ErrStaging)
	}
	staged := io.NewSectionReader(f, l.StagingStart, int64(last.PatchLen))
	var mg [4]byte
	if _, err := staged.ReadAt(mg[:], 0); err == nil && seal.IsSealed(mg[:]) {
		pk, err := openSealed(staged, int64(last.PatchLen), trusted, opts, a, iobuf, false)
		if err != nil {
			return nil, fmt.Errorf("staged sealed package: %w", err)
		}
		if pk.hdr.Steps != int(last.Steps) || !pk.hdr.InPlace || int(pk.hdr.EraseBlock) != l.EraseBlock {
			return nil, fmt.Errorf("staged package header disagrees with the journal: %w", ErrStaging)
		}
		return pk, nil
	}
	hbuf, err := a.take(headerPrefix, "header")
	if err != nil {
		return nil, err
	}
	n := min(len(hbuf), int(last.PatchLen))
	if _, err := f.ReadAt(hbuf[:n], l.StagingStart); err != nil {
		return nil, fmt.Errorf("read staged header: %w", err)
	}
	// delta.Parse takes the package's tail to be the signature; given a
	// prefix it still reads every header field (the header is far shorter
	// than the prefix) and only the stream length must be set from the
	// real length.
	hdr, err := delta.Parse(hbuf[:n])
	if err != nil {
		return nil, fmt.Errorf("staged package: %w", err)
	}
	hdr.StreamSize = int(last.PatchLen) - ed25519SigSize - hdr.HeaderSize
	if hdr.StreamSize < 0 || hdr.Steps != int(last.Steps) || !hdr.InPlace || int(hdr.EraseBlock) != l.EraseBlock {
		return nil, fmt.Errorf("staged package header disagrees with the journal: %w", ErrStaging)
	}
	return &pkg{hdr: hdr, payload: staged}, nil
}

const ed25519SigSize = 64

// commit checks the new image and makes it the boot record's image,
// trusting from then on the key trust (the package's announced key, or the
// one trusted now).
func commit(f *Flash, l Layout, j *Journal, hdr *delta.Header, last Record, iobuf []byte, trust ed25519.PublicKey) error {
	sum, err := hashFlash(f, l.ImageStart, int64(hdr.NewSize), iobuf)
	if err != nil {
		return fmt.Errorf("commit: hash new image: %w", err)
	}
	r := Record{PatchLen: last.PatchLen, PatchHash: last.PatchHash, Steps: last.Steps}
	if sum != hdr.NewHash {
		r.State = StateFailed
		if err := j.Append(r); err != nil {
			return fmt.Errorf("commit: %w (while recording: %w)", ErrUpdateFailed, err)
		}
		return ErrUpdateFailed
	}
	rec, _, err := readBootRecord(f, l)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	// A cut between the boot record and the journal record leaves the boot
	// record already naming the new image; do not write it twice.
	if rec.ImageSize != hdr.NewSize || rec.ImageHash != hdr.NewHash || rec.Version != hdr.Version || rec.SeqNo != hdr.SeqNo || !rec.TrustedKey.Equal(trust) {
		nr := BootRecord{ImageSize: hdr.NewSize, ImageHash: hdr.NewHash, TrustedKey: trust,
			SeqNo: hdr.SeqNo, Version: hdr.Version, DeviceType: rec.DeviceType, RAMBudget: rec.RAMBudget}
		if err := writeBootRecord(f, l, &nr); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	r.State = StateCommitted
	if err := j.Append(r); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// writeBlock erases erase block b and programs data at its start. Pages
// that are all 0xFF are left alone: erased flash already reads so.
func writeBlock(f *Flash, b int, data []byte) error {
	if err := f.Erase(b); err != nil {
		return err
	}
	return programSkippingErased(f, int64(b*f.geo.EraseBlock), data)
}

func programSkippingErased(f *Flash, addr int64, data []byte) error {
	ps := f.geo.PageSize
	for i := 0; i < len(data); i += ps {
		end := min(i+ps, len(data))
		if blank(data[i:end]) {
			continue
		}
		if err := f.Program(addr+int64(i), data[i:end]); err != nil {
			return err
		}
	}
	return nil
}

// hashFlash is the SHA-256 of n bytes at addr, read through buf.
func hashFlash(f *Flash, addr, n int64, buf []byte) ([32]byte, error) {
	h := sha256.New()
	for n > 0 {
		c := int(min(int64(len(buf)), n))
		if _, err := f.ReadAt(buf[:c], addr); err != nil {
			return [32]byte{}, err
		}
		h.Write(buf[:c])
		addr += int64(c)
		n -= int64(c)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}
