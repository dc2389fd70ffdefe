package firmware

import (
	"context"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/inplace"
	"github.com/fotastack/fota/lwm2m"
)

var timeZero time.Time

// Attach plugs o into c as the Firmware Update object and wires the end
// of an update to the client: after the simulated reboot, the Device
// object's Firmware Version (/3/0/3) reports what booted and the client
// registers again (Client.Reboot: no De-register, a resumed DTLS session
// where the server allows, then Register), so the server sees the new version and /5/0/5.
// A coaps:// Package URI is fetched with the client's own PSK when the
// object's Config has none (LwM2M Core E.6: the device reuses the
// credentials it has). c must be run with Start (not Run); ctx is the
// parent of the restarted client. Call before c.Start.
func Attach(ctx context.Context, c *client.Client, o *Object) {
	c.SetObject(o)
	o.mu.Lock()
	if o.cfg.PSKIdentity == "" && o.cfg.Credentials == nil {
		o.cfg.Credentials = c.PSK
	}
	if o.cfg.Session == nil {
		o.cfg.Session = c.ServerSession
	}
	prev := o.cfg.OnReboot
	o.cfg.OnReboot = func(boot inplace.BootResult, err error) {
		if prev != nil {
			prev(boot, err)
		}
		if err == nil {
			if dev := c.SimpleObject(3); dev != nil {
				_ = dev.Set(lwm2m.ResourcePath(3, 0, client.DevFirmwareVersion), lwm2m.String(boot.Version))
			}
		}
		_ = c.Reboot(ctx)
	}
	o.mu.Unlock()
}
