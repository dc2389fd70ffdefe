package campaign

import (
	"errors"
	"fmt"
	"time"
)

// AppInstaller installs application versions on devices: the campaign
// target of Software Management (/9). server/software's Manager is one;
// the engine keeps waves, thresholds, retries, timeouts and history the
// same for both targets and asks it only to start an install on a device
// and how that install goes.
type AppInstaller interface {
	// HasApp says whether the repository holds name at version (an error
	// saying what to upload otherwise).
	HasApp(name, version string) error
	// StartInstall begins installing name at version on ep; push sends the
	// package instead of the device pulling it; timeout bounds it.
	StartInstall(ep, name, version string, push bool, timeout time.Duration) error
	// InstallStatus is the last install of name on ep: its phase
	// ("downloading", "installing", ...), whether it ended, and its error
	// ("" on success); ok is false when there is none.
	InstallStatus(ep, name string) (phase string, done bool, errMsg string, ok bool)
}

// ErrAppBusy is what StartInstall returns (wrapped) when an operation on
// the application of that device is running already: the device waits.
var ErrAppBusy = errors.New("application operation running")

// targetName is what a campaign installs, for logs and messages.
func targetName(c Campaign) string {
	if c.App != "" {
		return "application " + c.App + " " + c.AppVersion
	}
	return c.DeviceType + " " + c.Version
}

// checkApp checks an application campaign's target.
func (m *Engine) checkApp(c *Campaign) error {
	if m.cfg.Apps == nil {
		return fmt.Errorf("%w: this server has no application repository", ErrBadCampaign)
	}
	if c.Image != "" || c.DeviceType != "" || c.Version != "" || c.Full || c.AllowDowngrade {
		return fmt.Errorf("%w: an application campaign (app, appVersion) takes no image, deviceType, version, full or allowDowngrade", ErrBadCampaign)
	}
	if c.AppVersion == "" {
		return fmt.Errorf("%w: app %q needs appVersion", ErrBadCampaign, c.App)
	}
	if err := m.cfg.Apps.HasApp(c.App, c.AppVersion); err != nil {
		return fmt.Errorf("%w: target application: %v", ErrBadCampaign, err)
	}
	return nil
}

// advanceApp is advance for an application campaign: queued devices get
// an install job; the job's phases are the device's states (downloading,
// then updating while it installs), its end the device's success or
// failure (which the engine retries as it does firmware).
func (m *Engine) advanceApp(c Campaign, d *Device) (bool, error) {
	apps := m.cfg.Apps
	if apps == nil {
		d.State, d.Error = DeviceFailed, "this server has no application repository"
		return false, nil
	}
	if d.State == DeviceQueued {
		// The job has its own bound; the engine's device timeout still
		// fails the device (and cancels nothing on it: the job ends alone).
		err := apps.StartInstall(d.Endpoint, c.App, c.AppVersion, c.Method == DeliveryPush, m.deviceTimeout(c))
		if errors.Is(err, ErrAppBusy) {
			return true, err // another operation runs: look again later
		}
		if err != nil {
			d.State, d.Error = DeviceFailed, err.Error()
			return false, nil
		}
		d.State, d.Progress, d.Started, d.Error = DeviceDownloading, 0, time.Now().UTC(), ""
		return true, nil
	}
	phase, done, msg, ok := apps.InstallStatus(d.Endpoint, c.App)
	if !ok {
		// The job is gone (a server restart): start again.
		d.State = DeviceQueued
		return false, nil
	}
	switch {
	case done && msg == "":
		d.State, d.Progress, d.Error = DeviceSucceeded, 100, ""
		return false, nil
	case done:
		d.State, d.Error = DeviceFailed, msg
		return false, nil
	case phase == "installing":
		d.State, d.Progress = DeviceUpdating, 100
	}
	return true, nil
}
