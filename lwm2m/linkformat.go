package lwm2m

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CoRE Link Format (RFC 6690, content format 40) as LwM2M uses it: the
// Register and Update payloads list the objects and instances a client
// has (LwM2M Core 6.2.1), and Discover answers list nodes with their
// attributes (LwM2M Core 5.4.2: pmin, pmax, gt, lt, st, epmin, epmax, dim,
// ver...).

// ErrLinkFormat marks a malformed link-format payload.
var ErrLinkFormat = errors.New("lwm2m: link format")

// WebLink is one link-value: a target URI and its attributes in order.
type WebLink struct {
	Target string
	Attrs  []LinkAttr
}

// LinkAttr is one link-param. A param written without "=" has an empty
// Value and Quoted false; Quoted records that the value was (or must be)
// a quoted-string, so rt="oma.lwm2m" round-trips as written.
type LinkAttr struct {
	Key    string
	Value  string
	Quoted bool
}

// Attr returns the value of the first attribute named key.
func (l WebLink) Attr(key string) (string, bool) {
	for _, a := range l.Attrs {
		if a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

// Path reads the link target as an LwM2M path below root (the client's
// alternate path, "/" when it has none).
func (l WebLink) Path(root string) (Path, error) {
	t := l.Target
	if r := strings.TrimSuffix(root, "/"); r != "" {
		if !strings.HasPrefix(t, r+"/") && t != r {
			return Path{}, fmt.Errorf("%w: link </%s> is not below the root path %q", ErrBadPath, strings.TrimPrefix(t, "/"), root)
		}
		t = strings.TrimPrefix(t, r)
	}
	return ParsePath(t)
}

type linkParser struct {
	s   string
	off int
}

func (p *linkParser) errf(msg string, args ...any) error {
	return fmt.Errorf("%w: byte %d: %s", ErrLinkFormat, p.off, fmt.Sprintf(msg, args...))
}

func (p *linkParser) skipSpace() {
	for p.off < len(p.s) && (p.s[p.off] == ' ' || p.s[p.off] == '\t' || p.s[p.off] == '\r' || p.s[p.off] == '\n') {
		p.off++
	}
}

// ParseLinks parses a link-format document. Whitespace around separators is
// tolerated (devices insert line breaks); an empty document is no links.
func ParseLinks(data []byte) ([]WebLink, error) {
	p := &linkParser{s: string(data)}
	var links []WebLink
	p.skipSpace()
	if p.off == len(p.s) {
		return nil, nil
	}
	// LwM2M 1.0 Bootstrap-Discover answers start with a bare parameter,
	// `lwm2m="1.0",</0/0>,...` (LwM2M 1.0 Core 5.2.7.1); 1.1 writes the
	// same as `</>;lwm2m=1.1`, which is how it is returned.
	if isParmnameChar(p.s[p.off]) {
		l := WebLink{Target: "/"}
		for {
			a, err := p.param()
			if err != nil {
				return nil, err
			}
			l.Attrs = append(l.Attrs, a)
			p.skipSpace()
			if p.off == len(p.s) || p.s[p.off] != ';' {
				break
			}
			p.off++
			p.skipSpace()
		}
		links = append(links, l)
		if p.off == len(p.s) {
			return links, nil
		}
		if p.s[p.off] != ',' {
			return nil, p.errf("expected ',' or end of links, found %q", p.s[p.off])
		}
		p.off++
		p.skipSpace()
	}
	for {
		l, err := p.link()
		if err != nil {
			return nil, err
		}
		links = append(links, l)
		p.skipSpace()
		if p.off == len(p.s) {
			return links, nil
		}
		if p.s[p.off] != ',' {
			return nil, p.errf("expected ',' or end of links, found %q", p.s[p.off])
		}
		p.off++
		p.skipSpace()
	}
}

func (p *linkParser) link() (WebLink, error) {
	var l WebLink
	if p.off >= len(p.s) || p.s[p.off] != '<' {
		return l, p.errf("expected '<' starting a link")
	}
	p.off++
	end := strings.IndexByte(p.s[p.off:], '>')
	if end < 0 {
		return l, p.errf("link target not closed by '>'")
	}
	l.Target = p.s[p.off : p.off+end]
	if strings.ContainsAny(l.Target, "<\",; ") {
		return l, p.errf("bad character in link target %q", l.Target)
	}
	p.off += end + 1
	for {
		p.skipSpace()
		if p.off == len(p.s) || p.s[p.off] != ';' {
			return l, nil
		}
		p.off++
		p.skipSpace()
		a, err := p.param()
		if err != nil {
			return l, err
		}
		l.Attrs = append(l.Attrs, a)
	}
}

func isParmnameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}

// isPtokenChar is RFC 6690's ptokenchar.
func isPtokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'()*+-./:<=>?@[]^_`{|}~", c) >= 0
}

func (p *linkParser) param() (LinkAttr, error) {
	var a LinkAttr
	start := p.off
	for p.off < len(p.s) && isParmnameChar(p.s[p.off]) {
		p.off++
	}
	if p.off == start {
		return a, p.errf("expected an attribute name")
	}
	a.Key = p.s[start:p.off]
	if p.off == len(p.s) || p.s[p.off] != '=' {
		return a, nil
	}
	p.off++
	if p.off < len(p.s) && p.s[p.off] == '"' {
		p.off++
		var b strings.Builder
		for {
			if p.off >= len(p.s) {
				return a, p.errf("quoted value of %q not closed", a.Key)
			}
			c := p.s[p.off]
			if c == '"' {
				p.off++
				break
			}
			if c == '\\' && p.off+1 < len(p.s) {
				p.off++
				c = p.s[p.off]
			}
			b.WriteByte(c)
			p.off++
		}
		a.Value, a.Quoted = b.String(), true
		return a, nil
	}
	start = p.off
	for p.off < len(p.s) && isPtokenChar(p.s[p.off]) && p.s[p.off] != ',' && p.s[p.off] != ';' {
		p.off++
	}
	if p.off == start {
		return a, p.errf("expected a value for %q", a.Key)
	}
	a.Value = p.s[start:p.off]
	// Some clients list formats as ct=110,112,11543 although the comma
	// separates links (RFC 6690 2). A comma followed by a digit cannot
	// start a link, so it is read as one more ct value, the same as the
	// quoted list ct="110 112 11543" of RFC 7252 7.2.1.
	if a.Key == "ct" {
		for p.off+1 < len(p.s) && p.s[p.off] == ',' && p.s[p.off+1] >= '0' && p.s[p.off+1] <= '9' {
			p.off++
			start = p.off
			for p.off < len(p.s) && p.s[p.off] >= '0' && p.s[p.off] <= '9' {
				p.off++
			}
			a.Value += " " + p.s[start:p.off]
			a.Quoted = true
		}
	}
	return a, nil
}

// FormatLinks writes links in link format. Values are quoted when the
// attribute says so or when they hold characters a ptoken cannot.
func FormatLinks(links []WebLink) []byte {
	var b strings.Builder
	for i, l := range links {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('<')
		b.WriteString(l.Target)
		b.WriteByte('>')
		for _, a := range l.Attrs {
			b.WriteByte(';')
			b.WriteString(a.Key)
			if a.Value == "" && !a.Quoted {
				continue
			}
			b.WriteByte('=')
			if a.Quoted || needsQuote(a.Value) {
				b.WriteByte('"')
				for j := 0; j < len(a.Value); j++ {
					if c := a.Value[j]; c == '"' || c == '\\' {
						b.WriteByte('\\')
					}
					b.WriteByte(a.Value[j])
				}
				b.WriteByte('"')
			} else {
				b.WriteString(a.Value)
			}
		}
	}
	return []byte(b.String())
}

func needsQuote(v string) bool {
	for i := 0; i < len(v); i++ {
		if !isPtokenChar(v[i]) || v[i] == ',' || v[i] == ';' {
			return true
		}
	}
	return false
}

// ObjectInfo is what a registration payload announces about one object.
type ObjectInfo struct {
	ID        uint16
	Version   string   // "ver" attribute; "" means 1.0 (LwM2M Core 6.2.1.1)
	Instances []uint16 // announced instances, ascending
}

// RegistrationPayload is the content of a Register or Update payload
// (LwM2M Core 6.2.1).
type RegistrationPayload struct {
	// RootPath is the alternate path announced with rt="oma.lwm2m"; "/"
	// when none is announced.
	RootPath string
	// Formats are the content formats announced with ct on the root link.
	Formats []ContentFormat
	// Objects are the announced objects, ascending by ID.
	Objects []ObjectInfo
}

// Object returns the announcement of object id.
func (r *RegistrationPayload) Object(id uint16) (ObjectInfo, bool) {
	i, ok := slices.BinarySearchFunc(r.Objects, id, func(o ObjectInfo, id uint16) int { return int(o.ID) - int(id) })
	if !ok {
		return ObjectInfo{}, false
	}
	return r.Objects[i], true
}

// ParseRegistrationPayload reads the objects, instances, object versions,
// alternate path and content formats a client announces, e.g.
// `</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1,</5>`.
func ParseRegistrationPayload(data []byte) (*RegistrationPayload, error) {
	links, err := ParseLinks(data)
	if err != nil {
		return nil, err
	}
	r := &RegistrationPayload{RootPath: "/"}
	// LwM2M Core 6.2.1: the link with rt="oma.lwm2m" names the root path
	// (it may come after others) and carries ct; a client without an
	// alternate path may announce ct on a bare </>.
	for _, l := range links {
		rt, _ := l.Attr("rt")
		if rt == "oma.lwm2m" || l.Target == "/" {
			if rt == "oma.lwm2m" {
				r.RootPath = l.Target
			}
			if ct, ok := l.Attr("ct"); ok {
				if r.Formats, err = parseCT(ct); err != nil {
					return nil, fmt.Errorf("%w: link <%s>: %w", ErrLinkFormat, l.Target, err)
				}
			}
		}
	}
	root := strings.TrimSuffix(r.RootPath, "/")
	objs := map[uint16]*ObjectInfo{}
	for _, l := range links {
		if strings.TrimSuffix(l.Target, "/") == root {
			continue
		}
		p, err := l.Path(r.RootPath)
		if err != nil {
			return nil, fmt.Errorf("%w: link <%s>: %w", ErrLinkFormat, l.Target, err)
		}
		if p.Len() < 1 || p.Len() > 2 {
			return nil, fmt.Errorf("%w: link <%s> is not an object or object instance", ErrLinkFormat, l.Target)
		}
		o := objs[p.Object()]
		if o == nil {
			o = &ObjectInfo{ID: p.Object()}
			objs[o.ID] = o
		}
		if v, ok := l.Attr("ver"); ok {
			o.Version = v
		}
		if p.IsInstance() && !slices.Contains(o.Instances, p.Instance()) {
			o.Instances = append(o.Instances, p.Instance())
		}
	}
	for _, id := range sortedKeys(objs) {
		o := objs[id]
		slices.Sort(o.Instances)
		r.Objects = append(r.Objects, *o)
	}
	return r, nil
}

// parseCT reads a ct value: one number or a space-separated list
// (RFC 7252 7.2.1, `ct="60 11542"`).
func parseCT(s string) ([]ContentFormat, error) {
	var out []ContentFormat
	for _, f := range strings.Fields(s) {
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("ct %q: %q is not a content-format number", s, f)
		}
		out = append(out, ContentFormat(n))
	}
	return out, nil
}

// FormatRegistrationPayload writes a registration payload for the given
// objects, announcing formats on a root link when there are any.
func FormatRegistrationPayload(r *RegistrationPayload) []byte {
	var links []WebLink
	root := strings.TrimSuffix(r.RootPath, "/")
	if len(r.Formats) > 0 || root != "" {
		l := WebLink{Target: root, Attrs: []LinkAttr{{Key: "rt", Value: "oma.lwm2m", Quoted: true}}}
		if l.Target == "" {
			l.Target = "/"
		}
		if len(r.Formats) > 0 {
			cts := make([]string, len(r.Formats))
			for i, f := range r.Formats {
				cts[i] = strconv.Itoa(int(f))
			}
			l.Attrs = append(l.Attrs, LinkAttr{Key: "ct", Value: strings.Join(cts, " "), Quoted: len(cts) > 1})
		}
		links = append(links, l)
	}
	for _, o := range r.Objects {
		var ver []LinkAttr
		if o.Version != "" {
			ver = []LinkAttr{{Key: "ver", Value: o.Version}}
		}
		if len(o.Instances) == 0 {
			links = append(links, WebLink{Target: root + ObjectPath(o.ID).String(), Attrs: ver})
			continue
		}
		for i, id := range o.Instances {
			l := WebLink{Target: root + InstancePath(o.ID, id).String()}
			if i == 0 {
				l.Attrs = ver
			}
			links = append(links, l)
		}
	}
	return FormatLinks(links)
}

// DiscoveredNode is one link of a Discover answer (LwM2M Core 5.4.2): a
// node and its attributes.
type DiscoveredNode struct {
	Path  Path
	Attrs Attributes
}

// ParseDiscover reads a Discover answer. Links that are not LwM2M paths
// (the root link of a Bootstrap-Discover answer) are skipped; bad paths
// and attribute values are errors.
func ParseDiscover(data []byte) ([]DiscoveredNode, error) {
	links, err := ParseLinks(data)
	if err != nil {
		return nil, err
	}
	out := make([]DiscoveredNode, 0, len(links))
	for _, l := range links {
		p, err := l.Path("/")
		if err != nil {
			return nil, fmt.Errorf("%w: link <%s>: %w", ErrLinkFormat, l.Target, err)
		}
		if p.IsRoot() {
			continue
		}
		a, err := AttributesOf(l)
		if err != nil {
			return nil, err
		}
		out = append(out, DiscoveredNode{Path: p, Attrs: a})
	}
	return out, nil
}

// FormatDiscover writes a Discover answer for nodes, in the given order.
func FormatDiscover(nodes []DiscoveredNode) []byte {
	links := make([]WebLink, len(nodes))
	for i, n := range nodes {
		links[i] = WebLink{Target: n.Path.String(), Attrs: n.Attrs.LinkAttrs()}
	}
	return FormatLinks(links)
}
