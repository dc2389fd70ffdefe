package software

import "github.com/fotastack/fota/client"

// Attach plugs o into c as the Software Management object: a pull from
// c's own server goes over c's session, and a coaps:// pull from another
// host dials with c's PSK (bootstrap may change it, so it is asked each
// time). Call before c.Start; a device that bootstraps gets a new client
// each time, and the object is attached to the newest.
func Attach(c *client.Client, o *Object) {
	o.mu.Lock()
	o.cfg.Session = c.ServerSession
	o.cfg.Credentials = c.PSK
	o.mu.Unlock()
	c.SetObject(o)
}
