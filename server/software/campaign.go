package software

import (
	"errors"
	"fmt"
	"time"

	"github.com/fotastack/fota/server/campaign"
)

// The Manager is the campaign engine's AppInstaller: campaigns whose target
// is an application version run one install job per device through it.
var _ campaign.AppInstaller = (*Manager)(nil)

// HasApp implements campaign.AppInstaller.
func (m *Manager) HasApp(name, version string) error {
	_, err := m.Find(name, version)
	return err
}

// StartInstall implements campaign.AppInstaller.
func (m *Manager) StartInstall(ep, name, version string, push bool, timeout time.Duration) error {
	_, err := m.Start(Request{Endpoint: ep, App: name, Version: version, Op: OpInstall, Push: push, Timeout: timeout})
	if errors.Is(err, ErrBusy) {
		return fmt.Errorf("%w: %v", campaign.ErrAppBusy, err)
	}
	return err
}

// InstallStatus implements campaign.AppInstaller: the last job on ep's
// application, if it is an install.
func (m *Manager) InstallStatus(ep, name string) (phase string, done bool, errMsg string, ok bool) {
	j, ok := m.Job(ep, name)
	if !ok || j.Op != OpInstall {
		return "", false, "", false
	}
	return j.Phase, j.Done, j.Error, true
}
