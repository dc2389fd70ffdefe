package client

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fotastack/fota/lwm2m"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// serveDiscover answers Discover (LwM2M Core 5.4.2): the object,
// instances and resources at and below the path in link format, with the
// attributes written on each, ver= on the object and dim= on multiple
// resources.
func (c *Client) serveDiscover(req *request) {
	links, err := c.Discover(req.path)
	if err != nil {
		c.fail(req, err)
		return
	}
	c.respond(req, codes.Content, message.AppLinkFormat, []byte(links))
}

// Discover renders the Discover answer for p (/o, /o/i or /o/i/r).
func (c *Client) Discover(p lwm2m.Path) (string, error) {
	if p.IsRoot() || p.IsResourceInstance() {
		return "", fmt.Errorf("discover %v: %w", p, ErrNotAllowed)
	}
	o := c.Object(p.Object())
	if o == nil {
		return "", notFound(p)
	}
	var links []string
	link := func(q lwm2m.Path, extra string) {
		c.mu.Lock()
		a := c.attrs[q]
		c.mu.Unlock()
		links = append(links, "<"+q.String()+">"+extra+a.link())
	}
	insts := o.Instances()
	if p.IsObject() {
		ver := ""
		if v := o.Version(); v != "" && v != "1.0" {
			ver = ";ver=" + v
		}
		link(p, ver)
	} else {
		found := false
		for _, i := range insts {
			found = found || i == p.Instance()
		}
		if !found {
			return "", notFound(p)
		}
		insts = []uint16{p.Instance()}
	}
	for _, i := range insts {
		ip := lwm2m.InstancePath(p.Object(), i)
		defs, err := o.Resources(i)
		if err != nil {
			return "", err
		}
		if !p.IsResource() {
			link(ip, "")
		}
		matched := false
		for _, d := range defs {
			rp := lwm2m.ResourcePath(p.Object(), i, d.ID)
			if p.IsResource() && rp != p {
				continue
			}
			matched = true
			dim := ""
			if d.Multiple && d.Readable() {
				if es, err := o.Read(rp); err == nil {
					dim = ";dim=" + strconv.Itoa(len(es))
				}
			}
			link(rp, dim)
		}
		if p.IsResource() && !matched {
			return "", notFound(p)
		}
	}
	return strings.Join(links, ","), nil
}
