package firmware

import (
	"errors"
	"fmt"

	"github.com/fotastack/fota/delta"
	"github.com/fotastack/fota/delta/seal"
	"github.com/fotastack/fota/inplace"
)

// checkPackage holds a staged package against the device: the signature
// with the trusted key of the flash's boot record, then what the header
// claims (in-place format, device type, sequence number, erase block,
// sizes, old image unless it is a full-image package, installer RAM). It returns the LwM2M result for a refusal:
// 5 for a package that is malformed or not signed by the trusted key, 6 for
// a valid package this device cannot take, 2 and 3 for one too big for its
// flash or RAM. The caller holds flashMu.
func (o *Object) checkPackage(pkg []byte) (*delta.Header, Result, error) {
	info, err := inplace.Inspect(o.cfg.Flash)
	if err != nil || info.Boot == nil {
		if err == nil {
			err = info.BootErr
		}
		return nil, ResultUpdateFailed, fmt.Errorf("read boot record: %w", err)
	}
	rec, l := info.Boot, info.Layout
	// A sealed package (delta/seal) is opened with the device key: one
	// encrypted for other devices is a valid package this device cannot
	// take (6), one that fails its signature or decryption is 5.
	hdr, need, err := inplace.Verify(o.cfg.Flash, pkg, o.cfg.Install)
	if errors.Is(err, seal.ErrNotRecipient) || errors.Is(err, seal.ErrNoDeviceKey) {
		return nil, ResultUnsupportedType, fmt.Errorf("verify package: %w", err)
	}
	if err != nil {
		return nil, ResultIntegrityFailure, fmt.Errorf("verify package: %w", err)
	}
	switch {
	case !hdr.InPlace:
		return hdr, ResultUnsupportedType, errors.New("a sequential package cannot be installed in place")
	case hdr.DeviceType != rec.DeviceType:
		return hdr, ResultUnsupportedType, fmt.Errorf("package for device type %q, device is %q", hdr.DeviceType, rec.DeviceType)
	case hdr.SeqNo < rec.SeqNo:
		return hdr, ResultUnsupportedType, fmt.Errorf("package sequence %d is below the running %d (rollback)", hdr.SeqNo, rec.SeqNo)
	case int(hdr.EraseBlock) != l.EraseBlock:
		return hdr, ResultUnsupportedType, fmt.Errorf("package for %d-byte erase blocks, flash has %d", hdr.EraseBlock, l.EraseBlock)
	case int64(hdr.Region()) > int64(l.ImageSize):
		return hdr, ResultNotEnoughFlash, fmt.Errorf("package needs a %d-byte image region, flash has %d", hdr.Region(), l.ImageSize)
	}
	// A delta must be for the running image; a full-image package (old
	// size 0, the server's fallback when it does not know the running
	// version) is written over whatever the region holds.
	if err := inplace.CheckBase(hdr, rec); err != nil {
		return hdr, ResultUnsupportedType, err
	}
	budget := o.cfg.Install.RAMBudget
	if budget == 0 {
		budget = inplace.DefaultRAMBudget + l.EraseBlock
	}
	if need > budget {
		return hdr, ResultOutOfRAM, fmt.Errorf("package needs %d bytes of installer RAM, budget %d", need, budget)
	}
	return hdr, ResultInitial, nil
}

// finishDownload ends Downloading: the staged package is checked at once,
// so that a corrupt or foreign package is reported now (State Idle with
// result 5 or 6, LwM2M Core E.6) rather than at Update. Ed25519 signs the
// whole package, so this reads it back from staging into RAM (bounded by
// the staging area). The caller holds mu.
func (o *Object) finishDownload() {
	o.flashMu.Lock()
	pkg, err := o.st.read(o.rec.Done)
	var hdr *delta.Header
	res := ResultIntegrityFailure
	if err == nil {
		hdr, res, err = o.checkPackage(pkg)
	}
	o.flashMu.Unlock()
	if err != nil {
		o.log.Info("firmware: package refused", "result", res, "err", err)
		o.rec.Done, o.rec.Total, o.rec.ETag = 0, 0, nil
		o.push = pushState{}
		o.enter(StateIdle, res)
		return
	}
	o.rec.PkgName, o.rec.PkgVersion = hdr.DeviceType, hdr.Version
	o.changed(ResPkgName)
	o.changed(ResPkgVersion)
	o.enter(StateDownloaded, ResultInitial)
}

// startInstall enters Updating and runs the installer in a goroutine the
// object owns. The caller holds mu.
func (o *Object) startInstall() {
	o.flashMu.Lock()
	info, err := inplace.Inspect(o.cfg.Flash)
	o.flashMu.Unlock()
	if err == nil && info.Boot != nil {
		o.rec.FromVersion = info.Boot.Version
	}
	o.rec.DeferUntil = timeZero
	o.gen++
	gen, n := o.gen, o.rec.Done
	o.enter(StateUpdating, ResultInitial)
	o.wg.Add(1)
	go o.install(gen, n)
}

// install verifies the staged package again (the boot record may have
// changed since the download), applies it in place, then does the
// simulated reboot: inplace.Boot checks the image and names the version
// that runs. Success is the package's version booting (result 1); a
// refusal before the image changed leaves the old image running (results
// 2, 3, 5, 6, 8); a failure after it changed is result 8.
func (o *Object) install(gen uint64, n int64) {
	defer o.wg.Done()
	o.flashMu.Lock()
	var (
		boot     inplace.BootResult
		bootErr  error
		rebooted bool
	)
	pkg, err := o.st.read(n)
	res := ResultIntegrityFailure
	var hdr *delta.Header
	if err == nil {
		hdr, res, err = o.checkPackage(pkg)
	}
	if err == nil {
		_, err = inplace.Install(o.cfg.Flash, pkg, o.cfg.Install)
		if errors.Is(err, inplace.ErrPowerCut) {
			// The simulated supply failed mid-install: this device is
			// dead until power-up, which finds State Updating in the
			// record and lets boot finish the update (finishInterrupted).
			o.flashMu.Unlock()
			o.log.Warn("firmware: power cut during install; the next power-up finishes it")
			return
		}
		res = installResult(err)
		pkg = nil
		boot, bootErr = inplace.Boot(o.cfg.Flash, o.cfg.Install)
		rebooted = true
		if res == ResultSuccess && (bootErr != nil || boot.Version != hdr.Version) {
			res, err = ResultUpdateFailed, fmt.Errorf("after install, boot: %v, version %q", bootErr, boot.Version)
		}
	}
	o.flashMu.Unlock()
	if err != nil {
		o.log.Warn("firmware: update failed", "result", res, "err", err)
	} else {
		o.log.Info("firmware: updated", "version", boot.Version)
	}
	o.mu.Lock()
	if o.gen == gen {
		o.clearDownload()
		o.rec.FromVersion = ""
		o.enter(StateIdle, res)
	}
	onReboot := o.cfg.OnReboot
	o.unlock()
	if rebooted && onReboot != nil {
		onReboot(boot, bootErr)
	}
}

// installResult maps the installer's error to an Update Result.
func installResult(err error) Result {
	switch {
	case err == nil:
		return ResultSuccess
	case errors.Is(err, inplace.ErrRAMBudget):
		return ResultOutOfRAM
	case errors.Is(err, inplace.ErrDoesNotFit):
		return ResultNotEnoughFlash
	case errors.Is(err, delta.ErrSignature), errors.Is(err, inplace.ErrStaging),
		errors.Is(err, seal.ErrSignature), errors.Is(err, seal.ErrDecrypt), errors.Is(err, seal.ErrFormat):
		return ResultIntegrityFailure
	case errors.Is(err, seal.ErrNotRecipient), errors.Is(err, seal.ErrNoDeviceKey):
		return ResultUnsupportedType
	case errors.Is(err, inplace.ErrDeviceType), errors.Is(err, inplace.ErrRollback), errors.Is(err, delta.ErrOldImage):
		return ResultUnsupportedType
	}
	return ResultUpdateFailed
}

// finishInterrupted is power-up in state Updating: the install was cut
// short. inplace.Boot finishes it (or finds the old image); the result is
// 1 if the package's version boots, 8 otherwise. The caller holds mu.
func (o *Object) finishInterrupted() {
	o.flashMu.Lock()
	boot, err := inplace.Boot(o.cfg.Flash, o.cfg.Install)
	o.flashMu.Unlock()
	res := ResultUpdateFailed
	if err == nil && o.rec.PkgVersion != "" && boot.Version == o.rec.PkgVersion {
		res = ResultSuccess
	}
	o.log.Info("firmware: update finished at boot", "version", boot.Version, "result", res, "err", err)
	o.clearDownload()
	o.rec.FromVersion = ""
	o.enter(StateIdle, res)
}

// RunningVersion is the version of the image the flash's boot record
// names (what /3/0/3 reports).
func (o *Object) RunningVersion() (string, error) {
	o.flashMu.Lock()
	defer o.flashMu.Unlock()
	info, err := inplace.Inspect(o.cfg.Flash)
	if err != nil {
		return "", err
	}
	if info.Boot == nil {
		return "", fmt.Errorf("firmware: %w", info.BootErr)
	}
	return info.Boot.Version, nil
}
