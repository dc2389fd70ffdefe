package campaign

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/server/firmware"
)

// What Create does before it starts a campaign, so that a mistake is a
// refusal with a reason rather than a fleet in a bad state.

// refuseDuplicate refuses c when a campaign that is still running or
// paused takes the same devices to the same image.
func (m *Engine) refuseDuplicate(c Campaign) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runs {
		o := r.c
		if (o.State == Running || o.State == Paused) && o.Image == c.Image && o.App == c.App && o.AppVersion == c.AppVersion && reflect.DeepEqual(o.Targets, c.Targets) {
			return fmt.Errorf("%w: campaign %s (%s) already takes these devices to %s; pause or abort it, or wait for it to end",
				ErrDuplicate, o.ID, o.State, targetName(o))
		}
	}
	return nil
}

// Bounds of the version reads of Create: the devices not asked then are
// checked when their turn comes (start).
const (
	maxVersionReads     = 256
	versionReadParallel = 16
	versionReadTimeout  = 5 * time.Second
)

// checkDowngrade refuses c when a device it targets runs a newer version
// than the target, unless c allows downgrades; then it raises the device
// type's rollback generation so the devices accept the older package. It
// asks the targeted devices that are registered and awake for /3/0/3 (a
// bounded number, in parallel); a device it could not ask is checked again
// when its turn comes.
func (m *Engine) checkDowngrade(c Campaign, target firmware.Image, eps []string) error {
	older := m.fw.OlderThanSome(target)
	if !older {
		return nil // the target is the newest version: nothing can be a downgrade
	}
	if c.AllowDowngrade {
		_, err := m.fw.AllowDowngrade(target.DeviceType)
		return err
	}
	versions := m.readVersions(eps)
	var newer []string
	for _, ep := range eps {
		if v, ok := versions[ep]; ok && m.isNewer(target, v) {
			newer = append(newer, fmt.Sprintf("%s (runs %s)", ep, v))
		}
	}
	if len(newer) == 0 {
		return nil
	}
	sort.Strings(newer)
	if len(newer) > 5 {
		newer = append(newer[:5], fmt.Sprintf("and %d more", len(newer)-5))
	}
	return fmt.Errorf("%w: %s %s is older than what %s run; a campaign to an older version needs --allow-downgrade (allowDowngrade: true)",
		ErrDowngrade, target.DeviceType, target.Version, strings.Join(newer, ", "))
}

// isNewer reports whether version (what a device runs) is newer than the
// target: by semantic version, else by the rollback counters of the two
// images when the repository has both.
func (m *Engine) isNewer(target firmware.Image, version string) bool {
	if c, ok := firmware.CompareVersions(version, target.Version); ok {
		return c > 0
	}
	if img, err := m.fw.FindImage(target.DeviceType, version); err == nil {
		return img.SeqNo > target.SeqNo
	}
	return false
}

// readVersions reads /3/0/3 of the registered, awake devices among eps.
func (m *Engine) readVersions(eps []string) map[string]string {
	out := map[string]string{}
	var mu sync.Mutex
	sem := make(chan struct{}, versionReadParallel)
	var wg sync.WaitGroup
	now := time.Now()
	asked := 0
	for _, ep := range eps {
		dev := m.srv.Device(ep)
		if dev == nil || !m.srv.Awake(dev, now) {
			continue
		}
		if asked++; asked > maxVersionReads {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), min(versionReadTimeout, m.srv.RequestTimeout()))
			defer cancel()
			resp, err := m.srv.Read(ctx, ep, "/3/0/3", format(lwm2m.FormatText))
			if err != nil || !resp.Success() {
				return
			}
			mu.Lock()
			out[ep] = strings.TrimSpace(string(resp.Payload))
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
