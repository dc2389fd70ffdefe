package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fotastack/fota/server/campaign"
)

func init() {
	register("campaign", "firmware update campaigns: create, status, pause, resume, abort", runCampaign)
}

// campaignActions are the summaries of the actions on one campaign.
var campaignActions = map[string]string{
	"pause":  "stop starting devices (those updating finish)",
	"resume": "continue a paused campaign",
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
		{name: "abort", args: "ID", summary: campaignActions["abort"], run: func(a []string) error { return campaignAction("abort", a) }},
	},
	examples: []string{"fota campaign create --version 2.0 --device-type meter --waves 10,100 --watch", "fota campaign status 7f3a9c --watch"},
}

func runCampaign(args []string) error { return campaignGroup.run(args) }

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
	watch := fs.Bool("watch", false, "follow the campaign with progress bars until it ends")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	c := campaign.Campaign{Name: *name, Image: *image, DeviceType: *devType, Version: *version, Method: *method, Full: *full,
		Concurrency: *conc, SuccessThreshold: *success, ErrorThreshold: *errs}
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
	if c.Image == "" && (c.DeviceType == "" || c.Version == "") {
		return &exitError{2, errors.New("--image, or --device-type and --version, is required")}
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
	fmt.Printf("campaign %s: %s %s to %d devices, waves %v, %s\n", st.ID, st.DeviceType, st.Version, st.Planned, st.Waves, st.Method)
	if *watch {
		return watchCampaign(a, st.ID)
	}
	return nil
}

func campaignStatus(args []string) error {
	fs := newFlags("campaign status", "[ID]", "List the campaigns, or show one campaign and its devices.",
		"fota campaign status", "fota campaign status 7f3a9c --watch")
	api := apiFlags(fs.FlagSet)
	watch := fs.Bool("watch", false, "follow the campaign with progress bars until it ends")
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
		var list []campaign.Status
		if err := json.Unmarshal(out, &list); err != nil {
			return fmt.Errorf("read answer: %w", err)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tTARGET\tSTATE\tWAVE\tDEVICES\tSUCCEEDED\tFAILED\tACTIVE")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%d/%d\t%d\t%d\t%d\t%d\n", s.ID, s.Name, s.DeviceType, s.Version, s.State,
				s.Wave+1, len(s.Waves), s.Summary.Total, s.Summary.Succeeded, s.Summary.Failed, s.Summary.Active)
		}
		return tw.Flush()
	}
	if *watch {
		return watchCampaign(a, pos[0])
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
	fmt.Printf("%d devices: %d succeeded, %d failed, %d active, %d queued", s.Total, s.Succeeded, s.Failed, s.Active, s.Queued)
	if s.BytesImages > 0 {
		fmt.Printf("; %d package bytes sent where full images are %d (%.1f%%)", s.BytesSent, s.BytesImages, 100*float64(s.BytesSent)/float64(s.BytesImages))
	}
	fmt.Println()
}

// watchCampaign draws a progress bar per wave (devices finished of the
// devices in the waves so far) until the campaign completes, aborts or
// pauses, then prints the device table.
func watchCampaign(a apiClient, id string) error {
	var bar *progressBar
	wave := -1
	for {
		st, err := getCampaign(a, id)
		if err != nil {
			return err
		}
		var inWave, done int64
		for _, d := range st.Devices {
			if d.Wave <= st.Wave && d.State != campaign.DeviceSkipped && d.State != campaign.DeviceCancelled {
				inWave++
				if d.State == campaign.DeviceSucceeded || d.State == campaign.DeviceFailed {
					done++
				}
			}
		}
		if st.Wave != wave {
			if bar != nil {
				bar.Finish()
			}
			wave = st.Wave
			bar = newProgressBar(fmt.Sprintf("wave %d/%d", wave+1, len(st.Waves)), inWave)
		}
		bar.total = inWave
		bar.Set(done)
		if st.State != campaign.Running {
			bar.Finish()
			printCampaign(st)
			if st.State == campaign.Paused || st.Summary.Failed > 0 {
				return &exitError{1, fmt.Errorf("campaign %s %s", st.State, st.Reason)}
			}
			return nil
		}
		time.Sleep(500 * time.Millisecond)
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
	return nil
}
