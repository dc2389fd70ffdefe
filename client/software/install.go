package software

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fotastack/fota/delta/app"
	"github.com/fotastack/fota/delta/tree"
)

const kindTree = app.KindTree

// finishDownload ends a download: DOWNLOADED, then the package is
// verified off the request path. The caller holds mu.
func (o *Object) finishDownload(in *instance) {
	in.rec.Total = in.rec.Done
	in.push = pushState{}
	in.pullCancel = nil
	o.enter(in, StateDownloaded, ResultDownloading)
	o.verify(in)
}

// verify checks the downloaded package (SHA-256, and the signature when
// the device trusts a key) and delivers it: DELIVERED with the package's
// name and version, or INITIAL with result 53 or 54. The caller holds mu.
func (o *Object) verify(in *instance) {
	gen := in.gen
	path, size := filepath.Join(in.dir, packageFile), in.rec.Done
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		h, res, why := o.check(path, size)
		o.mu.Lock()
		defer o.unlock()
		if in.gen != gen || o.insts[in.id] != in || in.rec.State != StateDownloaded {
			return
		}
		if res != ResultDelivered {
			o.fail(in, res, why)
			return
		}
		if in.rec.ForUpdate && in.rec.Installed && (h.Name != in.rec.Name || h.Kind != in.rec.Kind) {
			o.fail(in, ResultUnsupportedType, fmt.Sprintf("package of %s (kind %d) cannot update %s (kind %d)", h.Name, h.Kind, in.rec.Name, in.rec.Kind))
			return
		}
		if in.rec.Name != h.Name || in.rec.Version != h.Version {
			o.changed(in, ResPkgName, ResPkgVersion)
		}
		in.rec.Name, in.rec.Version, in.rec.Kind, in.rec.Reason = h.Name, h.Version, h.Kind, ""
		o.changed(in, ResStatusReason)
		o.enter(in, StateDelivered, ResultDelivered)
	}()
}

// check verifies the package file: ResultDelivered, or the failure and why.
func (o *Object) check(path string, size int64) (*app.Header, Result, string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ResultDeviceError, "open the downloaded package: " + err.Error()
	}
	defer f.Close()
	h, err := app.Verify(f, size, o.cfg.TrustedKey)
	switch {
	case errors.Is(err, app.ErrIntegrity), errors.Is(err, app.ErrSignature):
		return nil, ResultIntegrity, err.Error()
	case errors.Is(err, app.ErrCorrupt):
		return nil, ResultUnsupportedType, err.Error()
	case err != nil:
		return nil, ResultDeviceError, err.Error()
	}
	if h.Kind == app.KindTree && o.cfg.TrustedKey == nil {
		return nil, ResultUnsupportedType, "a tree delta needs a trusted key to verify it; give the device the server's signing key"
	}
	return h, ResultDelivered, ""
}

// startInstall installs the delivered package in a goroutine. The record
// says Installing until it ends, so a power cut in between installs again
// at power-up (a tree delta resumes from its journal). The caller holds mu.
func (o *Object) startInstall(in *instance) {
	path, size, dir := filepath.Join(in.dir, packageFile), in.rec.Done, in.dir
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		kind, err := o.install(dir, path, size)
		o.mu.Lock()
		defer o.unlock()
		if o.insts[in.id] != in {
			return
		}
		in.rec.Installing = false
		if err != nil {
			if errors.Is(err, tree.ErrPowerCut) {
				return // the simulated cut: the record still says Installing
			}
			o.fail(in, ResultInstallFailure, err.Error())
			return
		}
		in.rec.Installed, in.rec.ForUpdate, in.rec.Kind, in.rec.Reason = true, false, kind, ""
		in.rec.Active, in.rec.Running = false, false
		o.changed(in, ResActivationState, ResOperationalState, ResStatusReason)
		o.log.Info("software: installed", "instance", in.id, "name", in.rec.Name, "version", in.rec.Version)
		o.enter(in, StateInstalled, ResultInstalled)
	}()
}

// install puts the package's payload in place: a blob as the file
// app.bin (written aside, fsynced, renamed), a tree delta applied to tree/
// journaled by delta/tree (a power cut leaves the old or the new tree).
func (o *Object) install(dir, path string, size int64) (byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open the package: %w", err)
	}
	defer f.Close()
	// Verified again: the storage may have changed since delivery.
	h, err := app.Verify(f, size, o.cfg.TrustedKey)
	if err != nil {
		return 0, err
	}
	payload := io.NewSectionReader(f, h.PayloadOff, h.PayloadLen)
	switch h.Kind {
	case app.KindTree:
		td := filepath.Join(dir, treeDir)
		if err := os.MkdirAll(td, 0o755); err != nil {
			return 0, err
		}
		if _, err := tree.ApplyInPlace(td, payload, h.PayloadLen, o.cfg.TrustedKey, tree.Options{CutAfter: o.cfg.cutAfter}); err != nil {
			return 0, fmt.Errorf("apply the tree delta: %w", err)
		}
		return app.KindTree, nil
	default:
		tmp, err := os.CreateTemp(dir, blobFile+".*")
		if err != nil {
			return 0, err
		}
		defer os.Remove(tmp.Name())
		buf := make([]byte, 4096)
		if _, err = io.CopyBuffer(tmp, payload, buf); err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("write the application: %w", err)
		}
		if err := os.Rename(tmp.Name(), filepath.Join(dir, blobFile)); err != nil {
			return 0, fmt.Errorf("write the application: %w", err)
		}
		return app.KindBlob, nil
	}
}
