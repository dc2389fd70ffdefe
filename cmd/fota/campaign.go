package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fotastack/fota/server/campaign"
)

func init() {
	registerGroup(campaignGroup, "firmware update campaigns: create, status, pause, resume, retry, abort")
}

// campaignActions are the summaries of the actions on one campaign.
var campaignActions = map[string]string{
	"pause":  "stop starting devices (those updating finish)",
	"resume": "continue a paused campaign",
	"retry":  "queue the failed devices again (and run the campaign again)",
	"abort":  "end a campaign for good",
}

// campaignGroup is `fota campaign`, over the HTTP API of a running server.
var campaignGroup = group{
	name:    "campaign",
	summary: "Firmware update campaigns of a running server (over its HTTP API: --url, --api-token-file or $FOTA_URL, $FOTA_API_TOKEN).",
	subs: []subcommand{
		{name: "create", args: "--version V --device-type T [--waves 10,100] [--watch]", summary: "start a campaign", run: campaignCreate},
		{name: "status", aliases: []string{"list", "ls"}, args: "[ID] [--watch]", summary: "list campaigns, or show one", run: campaignStatus},
		{name: "pause", args: "ID", summary: campaignActions["pause"], run: func(a []string) error { return campaignAction("pause", a) }},
		{name: "resume", args: "ID", summary: campaignActions["resume"], run: func(a []string) error { return campaignAction("resume", a) }},
		{name: "retry", args: "ID", summary: campaignActions["retry"], run: func(a []string) error { return campaignAction("retry", a) }},
		{name: "abort", args: "ID", summary: campaignActions["abort"], run: func(a []string) error { return campaignAction("abort", a) }},
	},
	examples: []string{"fota campaign create --version 2.0 --device-type meter --waves 10,100 --watch",
		"fota campaign create --app meter-app --app-version 1.2.0 --waves 10,100", "fota campaign status 7f3a9c --watch"},
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func campaignCreate(args []string) error {
	fs := newFlags("campaign create", "--version V --device-type T | --image ID", "Start a firmware update campaign: devices of the type that run another version get the image, in waves.",
		"fota campaign create --version 2.0 --device-type meter --waves 10,100 --watch")
	api := apiFlags(fs.FlagSet)
	name := fs.String("name", "", "campaign name")
	image := fs.String("image", "", "target image `ID` (or --device-type and --version)")
	devType := fs.String("device-type", "", "device type of the target image")
	version := fs.String("version", "", "target firmware version")
	appName := fs.String("app", "", "install this application `NAME` (Software Management, /9) instead of firmware; with --app-version")
	appVersion := fs.String("app-version", "", "the application version an --app campaign installs")
	endpoints := fs.String("endpoints", "", "comma-separated endpoints to update (default: every matching device)")
	filter := fs.String("filter", "", "registration attribute filters, comma-separated k=glob (ep=sensor-*,transport=coaps)")
	from := fs.String("from-versions", "", "only devices running one of these comma-separated versions")
	method := fs.String("method", "pull", "delivery: pull (Package URI, /5/0/1) or push (Block1 write, /5/0/0)")
	full := fs.Bool("full", false, "send full images even where a delta is possible")
	waves := fs.String("waves", "100", "cumulative wave sizes in percent, e.g. 1,10,100")
	conc := fs.Int("concurrency", 10, "devices updating at once")
	success := fs.Float64("success", 1, "fraction of devices that must succeed before the next wave")
	errs := fs.Float64("errors", 0.2, "fraction of failed devices that pauses the campaign")
	window := fs.String("window", "", "daily maintenance window in UTC, HH:MM-HH:MM")
	downgrade := fs.Bool("allow-downgrade", false, "allow moving devices to an older version than they run (refused otherwise)")
	devTimeout := fs.Duration("device-timeout", 0, "fail a device not updated, not answering or not registered within this `duration` (default 2h)")
	retries := fs.Int("retries", 0, "try a failed device again this many times on its own")
	backoff := fs.Duration("retry-backoff", 0, "wait this `duration` before the first retry, doubling after (default 1m)")
	watch := fs.Bool("watch", false, "follow the campaign's progress until it ends (bars on a terminal, a line per change otherwise)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer (the campaign, with its \"id\")")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	c := campaign.Campaign{Name: *name, Image: *image, DeviceType: *devType, Version: *version, Method: *method, Full: *full,
		App: *appName, AppVersion: *appVersion, Concurrency: *conc, SuccessThreshold: *success, ErrorThreshold: *errs, AllowDowngrade: *downgrade, Retries: *retries}
	if *devTimeout > 0 {
		c.DeviceTimeout = devTimeout.String()
	}
	if *backoff > 0 {
		c.RetryBackoff = backoff.String()
	}
	c.Targets.Endpoints = splitList(*endpoints)
	c.Targets.Versions = splitList(*from)
	for _, kv := range splitList(*filter) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return &exitError{2, fmt.Errorf("--filter %q: want key=glob", kv)}
		}
		if c.Targets.Attributes == nil {
			c.Targets.Attributes = map[string]string{}
		}
		c.Targets.Attributes[k] = v
	}
	for _, w := range splitList(*waves) {
		f, err := strconv.ParseFloat(strings.TrimSuffix(w, "%"), 64)
		if err != nil {
			return &exitError{2, fmt.Errorf("--waves %q: %v", w, err)}
		}
		c.Waves = append(c.Waves, f)
	}
	if *window != "" {
		s, e, ok := strings.Cut(*window, "-")
		if !ok {
			return &exitError{2, errors.New("--window wants HH:MM-HH:MM")}
		}
		c.Window = campaign.Window{Start: s, End: e}
	}
	if c.App == "" && c.Image == "" && (c.DeviceType == "" || c.Version == "") {
		return &exitError{2, errors.New("--image, or --device-type and --version, or --app and --app-version, is required")}
	}
	a, err := api()
	if err != nil {
		return err
	}
	out, err := a.do("POST", "/api/campaigns", c)
	if err != nil {
		return err
	}
	var st campaign.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if *asJSON {
		if err := printJSON(out); err != nil {
			return err
		}
	} else {
		fmt.Printf("campaign %s: %s %s to %d devices, waves %v, %s\n", st.ID, st.DeviceType, st.Version, st.Planned, st.Waves, st.Method)
	}
	if *watch {
		return watchCampaign(a, st.ID)
	}
	return nil
}

func campaignStatus(args []string) error {
	fs := newFlags("campaign status", "[ID]", "List the campaigns, or show one campaign and its devices.",
		"fota campaign status", "fota campaign status 7f3a9c --watch")
	api := apiFlags(fs.FlagSet)
	watch := fs.Bool("watch", false, "follow the campaign's progress until it ends (bars on a terminal, a line per change otherwise)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	pos, err := fs.parseN(args, 0, 1)
	if err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		out, err := a.do("GET", "/api/campaigns", nil)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out)
		}
		var list []campaign.Status
		if err := json.Unmarshal(out, &list); err != nil {
			return fmt.Errorf("read answer: %w", err)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTARGET\tSTATE\tWAVE\tDEVICES\tSUCCEEDED\tFAILED\tSKIPPED\tACTIVE")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\n", s.ID, s.Name, s.DeviceType, s.Version, s.State,
				s.Wave+1, len(s.Waves), s.Summary.Total, s.Summary.Succeeded, s.Summary.Failed, s.Summary.ByState[campaign.DeviceSkipped], s.Summary.Active)
		}
		return tw.Flush()
	}
	if *watch {
		return watchCampaign(a, pos[0])
	}
	if *asJSON {
		out, err := a.do("GET", "/api/campaigns/"+url.PathEscape(pos[0]), nil)
		if err != nil {
			return err
		}
		return printJSON(out)
	}
	st, err := getCampaign(a, pos[0])
	if err != nil {
		return err
	}
	printCampaign(st)
	return nil
}

func getCampaign(a apiClient, id string) (campaign.Status, error) {
	var st campaign.Status
	out, err := a.do("GET", "/api/campaigns/"+url.PathEscape(id), nil)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("read answer: %w", err)
	}
	return st, nil
}

func printCampaign(st campaign.Status) {
	name := st.ID
	if st.Name != "" {
		name += " (" + st.Name + ")"
	}
	fmt.Printf("campaign %s: %s %s, %s, wave %d of %d %v\n", name, st.DeviceType, st.Version, st.State,
		st.Wave+1, len(st.Waves), st.Waves)
	if st.Reason != "" {
		fmt.Printf("  %s\n", st.Reason)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tWAVE\tSTATE\tPROGRESS\tFROM\tPACKAGE\tBYTES\tRESULT\tERROR")
	for _, d := range st.Devices {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d%%\t%s\t%s\t%d\t%d\t%s\n", d.Endpoint, d.Wave+1, d.State, d.Progress, d.FromVersion,
			d.PackageKind, d.PackageSize, d.Result, d.Error)
	}
	tw.Flush()
	s := st.Summary
	fmt.Printf("%d devices: %d succeeded, %d failed, %d skipped, %d active, %d queued", s.Total, s.Succeeded, s.Failed, s.Skipped, s.Active, s.Queued)
	if s.BytesImages > 0 {
		fmt.Printf("; %d package bytes sent where full images are %d (%.1f%%)", s.BytesSent, s.BytesImages, 100*float64(s.BytesSent)/float64(s.BytesImages))
	}
	fmt.Println()
}

// watchCampaign follows the campaign's event stream (GET
// /api/campaigns/{id}/events: "status" on every campaign change and each
// second, "device" on every device change) until the campaign completes,
// aborts or pauses, then prints the device table and the summary. On a
// terminal it draws a progress bar per wave; into a pipe or a file it
// writes a line per change instead, which a log can keep.
func watchCampaign(a apiClient, id string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Subscribe first, then read the devices: a change between the two
	// arrives as an event and is not lost.
	events, err := a.stream(ctx, "/api/campaigns/"+url.PathEscape(id)+"/events")
	if err != nil {
		return err
	}
	defer events.Close()
	st, err := getCampaign(a, id)
	if err != nil {
		return err
	}
	w := newCampaignWatch(st, os.Stdout, isTerminal(os.Stdout))
	err = readSSE(events, func(event, data string) error {
		switch event {
		case "status":
			var s campaign.Status
			if err := json.Unmarshal([]byte(data), &s); err != nil {
				return fmt.Errorf("status event: %w", err)
			}
			if w.status(s) {
				return errStopStream
			}
		case "device":
			var d campaign.Device
			if err := json.Unmarshal([]byte(data), &d); err != nil {
				return fmt.Errorf("device event: %w", err)
			}
			w.device(d)
		}
		return nil
	})
	w.finish()
	if ctx.Err() != nil {
		return &exitError{130, errors.New("interrupted; the campaign goes on")}
	}
	if err != nil {
		return fmt.Errorf("campaign %s event stream: %w", id, err)
	}
	// The stream ends after the campaign does, or when the server stops:
	// the final state is read, not assumed.
	final, err := getCampaign(a, id)
	if err != nil {
		return err
	}
	printCampaign(final)
	if final.State == campaign.Running {
		return fmt.Errorf("campaign %s: the event stream ended while it runs", id)
	}
	if final.State == campaign.Paused || final.Summary.Failed > 0 {
		return &exitError{1, fmt.Errorf("campaign %s %s", final.State, final.Reason)}
	}
	return nil
}

// isTerminal reports whether f is a terminal (a character device), where
// a progress bar redrawn with \r makes sense.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// campaignWatch is the state watchCampaign draws from.
type campaignWatch struct {
	out     io.Writer
	live    bool // a terminal: progress bars
	st      campaign.Status
	devices map[string]campaign.Device
	bar     *progressBar
	barWave int
}

func newCampaignWatch(st campaign.Status, out io.Writer, live bool) *campaignWatch {
	w := &campaignWatch{out: out, live: live, st: st, devices: map[string]campaign.Device{}, barWave: -1}
	for _, d := range st.Devices {
		w.devices[d.Endpoint] = d
	}
	if !live {
		fmt.Fprintf(out, "%s campaign %s: %s, wave %d/%d, %d devices\n", clock(), st.ID, st.State, st.Wave+1, len(st.Waves), len(st.Devices))
	}
	w.draw()
	return w
}

func clock() string { return time.Now().Format(time.TimeOnly) }

// status takes a campaign status; true when the campaign no longer runs.
func (w *campaignWatch) status(s campaign.Status) bool {
	changed := s.State != w.st.State || s.Wave != w.st.Wave
	s.Devices = w.st.Devices
	w.st = s
	if changed && !w.live {
		fmt.Fprintf(w.out, "%s campaign %s: %s, wave %d/%d", clock(), s.ID, s.State, s.Wave+1, len(s.Waves))
		if s.Reason != "" {
			fmt.Fprintf(w.out, " (%s)", s.Reason)
		}
		fmt.Fprintln(w.out)
	}
	w.draw()
	return s.State != campaign.Running
}

// device takes a device change; without a terminal, a change of state
// is a line (download progress alone is not).
func (w *campaignWatch) device(d campaign.Device) {
	old, seen := w.devices[d.Endpoint]
	w.devices[d.Endpoint] = d
	if !w.live && (!seen || old.State != d.State) {
		fmt.Fprintf(w.out, "%s %s: %s", clock(), d.Endpoint, d.State)
		if d.PackageKind != "" && d.State != campaign.DeviceSkipped {
			fmt.Fprintf(w.out, " (%s package, %d bytes)", d.PackageKind, d.PackageSize)
		}
		if d.Error != "" {
			fmt.Fprintf(w.out, ": %s", d.Error)
		}
		fmt.Fprintln(w.out)
	}
	w.draw()
}

// progress counts the devices of the waves so far that are finished, of
// those that take part (skipped and cancelled ones do not).
func (w *campaignWatch) progress() (done, total int64) {
	for _, d := range w.devices {
		if d.Wave > w.st.Wave || d.State == campaign.DeviceSkipped || d.State == campaign.DeviceCancelled {
			continue
		}
		total++
		if d.State == campaign.DeviceSucceeded || d.State == campaign.DeviceFailed {
			done++
		}
	}
	return done, total
}

func (w *campaignWatch) draw() {
	if !w.live {
		return
	}
	done, total := w.progress()
	if w.st.Wave != w.barWave {
		if w.bar != nil {
			w.bar.Finish()
		}
		w.barWave = w.st.Wave
		w.bar = newProgressBar(fmt.Sprintf("wave %d/%d", w.st.Wave+1, len(w.st.Waves)), total)
		w.bar.w = w.out
	}
	w.bar.mu.Lock()
	w.bar.total = total
	w.bar.mu.Unlock()
	w.bar.Set(done)
}

func (w *campaignWatch) finish() {
	if w.bar != nil {
		w.bar.Finish()
		w.bar = nil
	}
}

func campaignAction(action string, args []string) error {
	summary := campaignActions[action]
	fs := newFlags("campaign "+action, "ID", strings.ToUpper(summary[:1])+summary[1:]+".", "fota campaign "+action+" 7f3a9c --reason 'field reports'")
	api := apiFlags(fs.FlagSet)
	reason := fs.String("reason", "", "reason recorded with the campaign")
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	var body any
	if *reason != "" {
		body = map[string]string{"reason": *reason}
	}
	out, err := a.do("POST", "/api/campaigns/"+url.PathEscape(pos[0])+"/"+action, body)
	if err != nil {
		return err
	}
	var st campaign.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	fmt.Printf("campaign %s: %s %s\n", st.ID, st.State, st.Reason)
	if action == "retry" {
		fmt.Printf("  %d failed devices queued again\n", st.Summary.Queued)
	}
	return nil
}

func runCampaign(args []string) error { return campaignGroup.run(args) }
