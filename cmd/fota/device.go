package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/fotastack/fota/lwm2m"
	"github.com/fotastack/fota/objects"
)

func init() {
	registerGroup(deviceGroup, "registered devices of a running server: list, show, read, write, exec, observe, discover, history")
}

// deviceGroup is `fota device`: the operations Leshan's demo offers by
// click, over the server's HTTP API. Paths print with the names of the
// object registry (/3/0/0 is "Manufacturer"), values as text; --json gives
// the API's answer instead.
var deviceGroup = group{
	name:    "device",
	summary: "Registered devices of a running server and the LwM2M operations on them (over its HTTP API: --url, --api-token-file or $FOTA_URL, $FOTA_API_TOKEN).",
	subs: []subcommand{
		{name: "list", aliases: []string{"ls"}, summary: "registered devices", run: deviceList},
		{name: "show", args: "EP", summary: "one registration: transport, security, objects, observations", run: deviceShow},
		{name: "read", args: "EP PATH", summary: "Read an object, instance or resource", run: deviceRead},
		{name: "write", args: "EP PATH VALUE", summary: "Write one resource, VALUE as text", run: deviceWrite},
		{name: "exec", args: "EP PATH [ARGS]", summary: "Execute a resource", run: deviceExec},
		{name: "observe", args: "EP PATH [--count N]", summary: "Observe a path and print its notifications until interrupted", run: deviceObserve},
		{name: "discover", args: "EP PATH", summary: "Discover the resources and attributes of an object or instance", run: deviceDiscover},
		{name: "history", args: "EP", summary: "the device's history: registrations, updates, firmware states, campaigns", run: deviceHistory},
	},
	examples: []string{"fota device list", "fota device read meter-1 /3/0", "fota device write meter-1 /1/0/1 600", "fota device exec meter-1 /3/0/4"},
}

// deviceFlags are the flags every device command has.
type deviceFlags struct {
	*cmdFlags
	api     func() (apiClient, error)
	json    *bool
	timeout *time.Duration
}

// target parses a device command's arguments EP PATH [...] (min to max of
// them) and returns them, the parsed path and the API client.
func (f deviceFlags) target(args []string, min, max int) ([]string, lwm2m.Path, apiClient, error) {
	pos, err := f.parseN(args, min, max)
	if err != nil {
		return nil, lwm2m.Path{}, apiClient{}, err
	}
	p, err := parsePathArg(pos[1])
	if err != nil {
		return nil, lwm2m.Path{}, apiClient{}, err
	}
	a, err := f.api()
	return pos, p, a, err
}

func newDeviceFlags(name, args, summary string, examples ...string) deviceFlags {
	fs := newFlags("device "+name, args, summary, examples...)
	return deviceFlags{
		cmdFlags: fs,
		api:      apiFlags(fs.FlagSet),
		json:     fs.Bool("json", false, "print the API's JSON answer"),
		timeout:  fs.Duration("timeout", 0, "how long the server waits for the device (0: the server's default); a queue-mode device answers when it wakes"),
	}
}

// devicePath is /api/clients/EP/PATH[/suffix] with ?timeout= when set.
func (f deviceFlags) devicePath(ep, path, suffix string) string {
	p := "/api/clients/" + url.PathEscape(ep) + path
	if suffix != "" {
		p += "/" + suffix
	}
	if *f.timeout > 0 {
		p += "?timeout=" + strconv.FormatFloat(f.timeout.Seconds(), 'f', -1, 64)
	}
	return p
}

// parsePathArg checks an LwM2M path argument and returns it in canonical
// form; a bad path is a usage error before anything goes to the server.
func parsePathArg(s string) (lwm2m.Path, error) {
	if !strings.HasPrefix(s, "/") {
		s = "/" + s
	}
	p, err := lwm2m.ParsePath(s)
	if err != nil || p.IsRoot() {
		return p, &exitError{2, fmt.Errorf("path %q: want /OBJECT[/INSTANCE[/RESOURCE[/INSTANCE]]], e.g. /3/0/0", s)}
	}
	return p, nil
}

// printJSON writes an API answer indented, as it came otherwise.
func printJSON(data []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(data), "", "  "); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := os.Stdout.Write(b.Bytes())
	return err
}

func deviceList(args []string) error {
	f := newDeviceFlags("list", "", "List the registered devices.", "fota device list", "fota device list --json")
	if _, err := f.parseN(args, 0, 0); err != nil {
		return err
	}
	a, err := f.api()
	if err != nil {
		return err
	}
	out, err := a.do("GET", "/api/clients", nil)
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(out)
	}
	var list []registrationJSON
	if err := json.Unmarshal(out, &list); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Endpoint < list[j].Endpoint })
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tLWM2M\tBINDING\tSECURITY\tADDRESS\tLAST UPDATE\tEXPIRES")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Endpoint, r.Version, r.binding(), r.security(), r.Address,
			ago(r.LastUpdate), until(r.Expires))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("%d devices\n", len(list))
	return nil
}

// registrationJSON is what this command reads of a registration in the
// API (dm.ClientJSON).
type registrationJSON struct {
	Endpoint     string    `json:"endpoint"`
	ID           string    `json:"registrationId"`
	Registered   time.Time `json:"registrationDate"`
	LastUpdate   time.Time `json:"lastUpdate"`
	Lifetime     int64     `json:"lifetime"`
	Version      string    `json:"lwM2mVersion"`
	Binding      string    `json:"bindingMode"`
	Queue        bool      `json:"queueMode"`
	Address      string    `json:"address"`
	Transport    string    `json:"transport"`
	Security     string    `json:"security"`
	Identity     string    `json:"identity"`
	Links        string    `json:"objectLinks"`
	Expires      time.Time `json:"expires"`
	Format       string    `json:"preferredFormat"`
	Observations []struct {
		Paths     []string `json:"paths"`
		Composite bool     `json:"composite"`
	} `json:"observations"`
}

func (r registrationJSON) binding() string {
	if r.Queue {
		return r.Binding + " (queue)"
	}
	return r.Binding
}

func (r registrationJSON) security() string {
	if r.Security == "" {
		return "none"
	}
	return r.Security
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if d := time.Until(t).Round(time.Second); d > 0 {
		return "in " + d.String()
	}
	return "expired"
}

func deviceShow(args []string) error {
	f := newDeviceFlags("show", "EP", "Show one registration: transport and security, lifetime, the objects the device announced, the observations.",
		"fota device show meter-1")
	pos, err := f.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	a, err := f.api()
	if err != nil {
		return err
	}
	out, err := a.do("GET", "/api/clients/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(out)
	}
	var r registrationJSON
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "endpoint\t%s\n", r.Endpoint)
	fmt.Fprintf(tw, "registration\t%s, since %s\n", r.ID, r.Registered.Format(time.RFC3339))
	fmt.Fprintf(tw, "lwm2m\t%s, binding %s, preferred format %s\n", r.Version, r.binding(), r.Format)
	fmt.Fprintf(tw, "address\t%s (%s)\n", r.Address, r.Transport)
	sec := r.security()
	if r.Identity != "" {
		sec += ", identity " + r.Identity
	}
	fmt.Fprintf(tw, "security\t%s\n", sec)
	fmt.Fprintf(tw, "lifetime\t%ds, last update %s, expires %s\n", r.Lifetime, ago(r.LastUpdate), until(r.Expires))
	if err := tw.Flush(); err != nil {
		return err
	}
	links, _ := lwm2m.ParseLinks([]byte(r.Links))
	if len(links) > 0 {
		fmt.Println("objects:")
		reg := objects.Default()
		for _, l := range links {
			p, err := lwm2m.ParsePath(l.Target)
			if err != nil || p.IsRoot() {
				continue
			}
			name := pathName(reg, p)
			if v, ok := l.Attr("ver"); ok {
				name += " v" + v
			}
			fmt.Printf("  %-10s %s\n", p, name)
		}
	}
	if len(r.Observations) > 0 {
		fmt.Println("observations:")
		for _, o := range r.Observations {
			kind := ""
			if o.Composite {
				kind = " (composite)"
			}
			fmt.Printf("  %s%s\n", strings.Join(o.Paths, ", "), kind)
		}
	}
	return nil
}

// pathName names what a path points at from the object registry: the
// object's name for /3 and /3/0, the resource's for /3/0/0 and /3/0/7/1
// (with the instance in brackets); "" for an object the registry lacks.
func pathName(reg *objects.Registry, p lwm2m.Path) string {
	o, ok := reg.Get(p.Object())
	if !ok {
		return ""
	}
	if p.Len() < 3 {
		return o.Name
	}
	r, ok := o.Resource(p.Resource())
	if !ok {
		return ""
	}
	if p.IsResourceInstance() {
		return fmt.Sprintf("%s[%d]", r.Name, p.ResourceInstance())
	}
	return r.Name
}

// deviceResponse is what this command reads of a device's answer in the
// API (dm.ResponseJSON).
type deviceResponse struct {
	Status      string `json:"status"`
	Code        string `json:"code"`
	Success     bool   `json:"success"`
	Path        string `json:"path"`
	Format      string `json:"format"`
	Content     any    `json:"content"`
	Payload     string `json:"payload"`
	DecodeError string `json:"decodeError"`
	Entries     []struct {
		Path  string          `json:"path"`
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	} `json:"entries"`
}

// deviceAnswer decodes an operation's answer. A device's error code (4.04
// for a path it does not have, 4.05 for an operation the resource does not
// allow) is an error of the command, never a value to print.
func deviceAnswer(op, ep string, p lwm2m.Path, out []byte) (deviceResponse, error) {
	var r deviceResponse
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("read answer: %w", err)
	}
	if !r.Success {
		what := p.String()
		if n := pathName(objects.Default(), p); n != "" {
			what += " (" + n + ")"
		}
		return r, fmt.Errorf("%s %s on %s: the device answered %s", op, what, ep, coapCodeText(r.Code, r.Status))
	}
	return r, nil
}

// coapCodeText writes a CoAP code as RFC 7252 does, "4.04 Not Found",
// from the API's code name ("NotFound") and Leshan status ("NOT_FOUND").
func coapCodeText(name, status string) string {
	words := strings.ToLower(strings.ReplaceAll(status, "_", " "))
	if words != "" {
		words = strings.ToUpper(words[:1]) + words[1:]
	}
	c, err := codes.ToCode(name)
	if err != nil {
		return strings.TrimSpace(name + " " + words)
	}
	return strings.TrimSpace(fmt.Sprintf("%d.%02d %s", c>>5, c&0x1f, words))
}

// deviceCall runs one operation; an API error naming the device's answer
// (the server may answer a device error with a non-2xx status) is
// returned as is.
func (f deviceFlags) deviceCall(a apiClient, method, ep string, p lwm2m.Path, suffix string, body io.Reader, contentType string) ([]byte, error) {
	path := f.devicePath(ep, p.String(), suffix)
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := *a.hc
	if *f.timeout > 0 {
		hc.Timeout = *f.timeout + 10*time.Second
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &apiError{method: method, path: path, status: resp.StatusCode, statusText: resp.Status, msg: apiErrorMessage(data)}
	}
	return data, nil
}

func deviceRead(args []string) error {
	f := newDeviceFlags("read", "EP PATH", "Read an object, an instance, a resource or a resource instance; values print as text with their names from the object registry.",
		"fota device read meter-1 /3/0", "fota device read meter-1 /3/0/0 --json")
	pos, p, a, err := f.target(args, 2, 2)
	if err != nil {
		return err
	}
	out, err := f.deviceCall(a, "GET", pos[0], p, "", nil, "")
	if err != nil {
		return err
	}
	r, err := deviceAnswer("read", pos[0], p, out)
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(out)
	}
	return printValues(os.Stdout, r)
}

// printValues prints the decoded entries of a read, one line each: path,
// name, value as text. One resource read prints its value alone, so that
// `$(fota device read EP /3/0/3)` is the firmware version.
func printValues(w io.Writer, r deviceResponse) error {
	if r.DecodeError != "" {
		return fmt.Errorf("the device's %s answer does not decode: %s", r.Format, r.DecodeError)
	}
	if len(r.Entries) == 0 {
		switch c := r.Content.(type) {
		case string:
			fmt.Fprintln(w, c)
		case nil:
			if r.Payload != "" {
				b, _ := base64.StdEncoding.DecodeString(r.Payload)
				fmt.Fprintln(w, hex.EncodeToString(b))
			}
		default:
			b, _ := json.Marshal(c)
			fmt.Fprintln(w, string(b))
		}
		return nil
	}
	if p, err := lwm2m.ParsePath(r.Path); err == nil && len(r.Entries) == 1 && r.Entries[0].Path == p.String() && p.Len() >= 3 {
		fmt.Fprintln(w, valueText(r.Entries[0].Type, r.Entries[0].Value))
		return nil
	}
	reg := objects.Default()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range r.Entries {
		name := ""
		if p, err := lwm2m.ParsePath(e.Path); err == nil {
			name = pathName(reg, p)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Path, name, valueText(e.Type, e.Value))
	}
	return tw.Flush()
}

// valueText renders a decoded value: strings as they are, opaque bytes
// (base64 in the API's JSON) in hex, numbers and times as the API wrote
// them.
func valueText(typ string, raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if strings.EqualFold(typ, "opaque") {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return hex.EncodeToString(b)
			}
		}
		return s
	}
	return string(raw)
}

func deviceWrite(args []string) error {
	f := newDeviceFlags("write", "EP PATH VALUE", "Write one resource; VALUE is its text form (numbers, true/false, strings), which the device reads by the resource's type.",
		"fota device write meter-1 /1/0/1 600", "fota device write meter-1 /3/0/14 -- -05:00")
	pos, p, a, err := f.target(args, 3, 3)
	if err != nil {
		return err
	}
	if p.Len() < 3 {
		return f.usageError(fmt.Sprintf("write: %s is not a resource (a value goes to /OBJECT/INSTANCE/RESOURCE)", p))
	}
	// {"value": "text"} is written as text/plain, which the device parses
	// by the resource's type (LwM2M Core 7.4.1).
	body, _ := json.Marshal(map[string]string{"value": pos[2]})
	out, err := f.deviceCall(a, "PUT", pos[0], p, "", bytes.NewReader(body), "application/json")
	if err != nil {
		return err
	}
	if _, err := deviceAnswer("write", pos[0], p, out); err != nil {
		return err
	}
	if *f.json {
		return printJSON(out)
	}
	fmt.Printf("wrote %s %s\n", p, pathName(objects.Default(), p))
	return nil
}

func deviceExec(args []string) error {
	f := newDeviceFlags("exec", "EP PATH [ARGS]", "Execute a resource, with optional arguments (LwM2M Core 5.4.5: 0='a',1 ...).",
		"fota device exec meter-1 /3/0/4", "fota device exec meter-1 /1/0/8")
	pos, p, a, err := f.target(args, 2, 3)
	if err != nil {
		return err
	}
	if !p.IsResource() {
		return f.usageError(fmt.Sprintf("exec: %s is not a resource", p))
	}
	var execArgs string
	if len(pos) == 3 {
		execArgs = pos[2]
	}
	out, err := f.deviceCall(a, "POST", pos[0], p, "", strings.NewReader(execArgs), "text/plain")
	if err != nil {
		return err
	}
	if _, err := deviceAnswer("exec", pos[0], p, out); err != nil {
		return err
	}
	if *f.json {
		return printJSON(out)
	}
	fmt.Printf("executed %s %s\n", p, pathName(objects.Default(), p))
	return nil
}

func deviceDiscover(args []string) error {
	f := newDeviceFlags("discover", "EP PATH", "Discover what an object or instance holds: its instances and resources, with their attributes (pmin, pmax, ...).",
		"fota device discover meter-1 /3", "fota device discover meter-1 /5/0 --json")
	pos, p, a, err := f.target(args, 2, 2)
	if err != nil {
		return err
	}
	out, err := f.deviceCall(a, "GET", pos[0], p, "discover", nil, "")
	if err != nil {
		return err
	}
	r, err := deviceAnswer("discover", pos[0], p, out)
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(out)
	}
	content, _ := r.Content.(string)
	links, err := lwm2m.ParseLinks([]byte(content))
	if err != nil {
		return fmt.Errorf("discover: the device's link format does not parse: %w", err)
	}
	reg := objects.Default()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, l := range links {
		name := ""
		if lp, err := lwm2m.ParsePath(l.Target); err == nil {
			name = pathName(reg, lp)
		}
		var attrs []string
		for _, at := range l.Attrs {
			if at.Value == "" {
				attrs = append(attrs, at.Key)
			} else {
				attrs = append(attrs, at.Key+"="+at.Value)
			}
		}
		// No tab after the last cell: tabwriter pads only the cells
		// before one, so lines carry no trailing blanks.
		if len(attrs) > 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Target, name, strings.Join(attrs, " "))
		} else {
			fmt.Fprintf(tw, "%s\t%s\n", l.Target, name)
		}
	}
	return tw.Flush()
}

func deviceObserve(args []string) error {
	f := newDeviceFlags("observe", "EP PATH", "Observe a path: print its current value, then every notification, until interrupted or --count notifications; the observation is cancelled at the end unless it existed before.",
		"fota device observe meter-1 /3/0/13 --count 3", "fota device observe meter-1 /5/0/3 --json")
	count := f.Int("count", 0, "stop after this many notifications (0: until interrupted)")
	pos, p, a, err := f.target(args, 2, 2)
	if err != nil {
		return err
	}
	ep := pos[0]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Whether someone (a campaign, another operator) observes the path
	// already: their observation is not ours to cancel.
	reg, err := a.do("GET", "/api/clients/"+url.PathEscape(ep), nil)
	if err != nil {
		return err
	}
	var r registrationJSON
	if err := json.Unmarshal(reg, &r); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	existed := false
	for _, o := range r.Observations {
		if !o.Composite && len(o.Paths) == 1 && o.Paths[0] == p.String() {
			existed = true
		}
	}
	// Subscribe before observing, so that no notification falls between.
	events, err := a.stream(ctx, "/api/event?ep="+url.QueryEscape(ep))
	if err != nil {
		return err
	}
	defer events.Close()
	out, err := f.deviceCall(a, "POST", ep, p, "observe", nil, "")
	if err != nil {
		return err
	}
	first, err := deviceAnswer("observe", ep, p, out)
	if err != nil {
		return err
	}
	if !existed {
		defer func() {
			// The command's context may be cancelled already (Ctrl-C).
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(dctx, "DELETE", a.base+f.devicePath(ep, p.String(), "observe"), nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+a.token)
				if resp, err := a.hc.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	name := pathName(objects.Default(), p)
	show := func(data []byte, r deviceResponse) error {
		if *f.json {
			_, err := fmt.Printf("%s\n", bytes.TrimSpace(data))
			return err
		}
		var b strings.Builder
		if err := printValues(&b, r); err != nil {
			return err
		}
		text := strings.TrimRight(b.String(), "\n")
		if strings.Contains(text, "\n") {
			fmt.Printf("%s %s %s\n%s\n", time.Now().Format(time.TimeOnly), p, name, text)
		} else {
			fmt.Printf("%s %s %s: %s\n", time.Now().Format(time.TimeOnly), p, name, text)
		}
		return nil
	}
	if err := show(out, first); err != nil {
		return err
	}
	n := 0
	err = readSSE(events, func(event, data string) error {
		if event != "NOTIFICATION" {
			return nil
		}
		var e struct {
			Data struct {
				Res       string          `json:"res"`
				Composite bool            `json:"composite"`
				Val       json.RawMessage `json:"val"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(data), &e) != nil || e.Data.Composite || e.Data.Res != p.String() {
			return nil
		}
		var r deviceResponse
		if err := json.Unmarshal(e.Data.Val, &r); err != nil {
			return fmt.Errorf("notification: %w", err)
		}
		if !r.Success {
			// An error code ends the observation (RFC 7641 3.2).
			return fmt.Errorf("observe %s on %s: the device ended the observation with %s %s", p, ep, r.Code, r.Status)
		}
		if err := show(e.Data.Val, r); err != nil {
			return err
		}
		if n++; *count > 0 && n >= *count {
			return errStopStream
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil // interrupted: the normal end
	}
	if err != nil {
		return err
	}
	if *count == 0 || n < *count {
		return errors.New("the server ended the event stream")
	}
	return nil
}

func deviceHistory(args []string) error {
	f := newDeviceFlags("history", "EP", "Show a device's history as the server keeps it: registrations, updates, firmware state changes with result codes, campaign membership.",
		"fota device history meter-1", "fota device history meter-1 --json")
	pos, err := f.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	a, err := f.api()
	if err != nil {
		return err
	}
	path := "/api/clients/" + url.PathEscape(pos[0]) + "/history"
	out, err := a.do("GET", path, nil)
	var ae *apiError
	if errors.As(err, &ae) && ((ae.status == http.StatusNotFound && strings.Contains(ae.msg, "page not found")) ||
		(ae.status == http.StatusBadRequest && strings.Contains(ae.msg, "path"))) {
		// A server without the history route has no such route (the
		// router's plain 404) or takes "history" for an LwM2M path (400).
		return fmt.Errorf("this server keeps no device history (GET %s: %s): it needs a server with device history (issue 14)", path, ae.statusText)
	}
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(out)
	}
	var list []map[string]any
	if err := json.Unmarshal(out, &list); err != nil {
		var wrapped struct {
			History []map[string]any `json:"history"`
		}
		if json.Unmarshal(out, &wrapped) != nil {
			return fmt.Errorf("read answer: %w", err)
		}
		list = wrapped.History
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tDETAIL")
	for _, e := range list {
		fmt.Fprintf(tw, "%v\t%v\t%s\n", orDash(e["time"]), orDash(e["kind"]), historyDetail(e))
	}
	return tw.Flush()
}

func orDash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}

// historyDetail prints what a history entry says besides its time and
// kind: its "detail" when that is text, else its other fields as k=v.
func historyDetail(e map[string]any) string {
	if d, ok := e["detail"].(string); ok && len(e) <= 3 {
		return d
	}
	var keys []string
	for k := range e {
		if k != "time" && k != "kind" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := e[k]
		if s, ok := v.(string); ok {
			parts = append(parts, k+"="+s)
			continue
		}
		b, _ := json.Marshal(v)
		parts = append(parts, k+"="+string(b))
	}
	return strings.Join(parts, " ")
}
