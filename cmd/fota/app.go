package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fotastack/fota/server/software"
)

func init() {
	registerGroup(appGroup, "application repository and devices' applications (Software Management, /9)")
}

// appGroup is `fota app`: the application repository of a running server
// and the applications of its devices, over its HTTP API.
var appGroup = group{
	name: "app",
	summary: "Applications (LwM2M Software Management, /9): the repository of a running server and each device's applications " +
		"(over its HTTP API: --url, --api-token-file or $FOTA_URL, $FOTA_API_TOKEN).",
	subs: []subcommand{
		{name: "add", args: "FILE --name N --version V", summary: "upload an application version", run: appAdd},
		{name: "list", aliases: []string{"ls"}, args: "[EP]", summary: "list the repository, or with EP the device's /9 instances", run: appList},
		{name: "rm", aliases: []string{"delete"}, args: "ID", summary: "remove an application version from the repository", run: appRemove},
		{name: "install", args: "EP NAME --version V", summary: "install (or update to) a version on a device", run: appOp(software.OpInstall)},
		{name: "uninstall", args: "EP NAME", summary: "uninstall an application from a device and remove its /9 instance", run: appOp(software.OpUninstall)},
		{name: "activate", args: "EP NAME", summary: "activate an installed application", run: appOp(software.OpActivate)},
		{name: "deactivate", args: "EP NAME", summary: "deactivate an application", run: appOp(software.OpDeactivate)},
	},
	examples: []string{"fota app add meter.bin --name meter-app --version 1.2.0", "fota app install meter-1 meter-app --version 1.2.0 --wait 60s",
		"fota app activate meter-1 meter-app --wait 30s", "fota app list meter-1"},
}

func appAdd(args []string) error {
	fs := newFlags("app add", "FILE --name N --version V", "Upload an application version to the server's repository.",
		"fota app add meter.bin --name meter-app --version 1.2.0")
	api := apiFlags(fs.FlagSet)
	name := fs.String("name", "", "application name, as devices report it in /9/x/0 (required)")
	version := fs.String("version", "", "application version, /9/x/1 (required)")
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	if *name == "" || *version == "" {
		return fs.usageError("--name and --version are required")
	}
	a, err := api()
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	q := url.Values{"name": {*name}, "version": {*version}}
	req, err := http.NewRequest("POST", a.base+"/api/apps?"+q.Encode(), f)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload: %s: %s", resp.Status, apiErrorMessage(body))
	}
	var app software.App
	if err := json.Unmarshal(body, &app); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	fmt.Printf("added %s %s: id %s, %d bytes, sha256 %.16s\n", app.Name, app.Version, app.ID, app.Size, app.SHA256)
	return nil
}

func appList(args []string) error {
	fs := newFlags("app list", "[EP]", "List the application repository; with EP, read the device's Software Management instances.",
		"fota app list", "fota app list meter-1")
	api := apiFlags(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	pos, err := fs.parseN(args, 0, 1)
	if err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	path := "/api/apps"
	if len(pos) == 1 {
		path = "/api/clients/" + url.PathEscape(pos[0]) + "/apps"
	}
	out, err := a.do("GET", path, nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if len(pos) == 1 {
		var insts []software.Instance
		if err := json.Unmarshal(out, &insts); err != nil {
			return fmt.Errorf("read answer: %w", err)
		}
		fmt.Fprintln(tw, "INSTANCE\tNAME\tVERSION\tSTATE\tRESULT\tACTIVE\tREASON")
		for _, i := range insts {
			fmt.Fprintf(tw, "/9/%d\t%s\t%s\t%s\t%d\t%v\t%s\n", i.Instance, i.Name, i.Version, updateStateName(i.UpdateState), i.UpdateResult, i.Active, i.StatusReason)
		}
		return tw.Flush()
	}
	var apps []software.App
	if err := json.Unmarshal(out, &apps); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	fmt.Fprintln(tw, "ID\tNAME\tVERSION\tSIZE\tSHA256\tADDED")
	for _, p := range apps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.16s\t%s\n", p.ID, p.Name, p.Version, p.Size, p.SHA256, p.Created.Format(time.RFC3339))
	}
	return tw.Flush()
}

func updateStateName(s int) string {
	names := []string{"INITIAL", "DOWNLOAD STARTED", "DOWNLOADED", "DELIVERED", "INSTALLED"}
	if s >= 0 && s < len(names) {
		return names[s]
	}
	return strconv.Itoa(s)
}

func appRemove(args []string) error {
	fs := newFlags("app rm", "ID", "Remove an application version from the repository (fota app list shows the IDs); devices keep what they installed.",
		"fota app rm 3f2a9c01d4e5")
	api := apiFlags(fs.FlagSet)
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	if _, err := a.do("DELETE", "/api/apps/"+url.PathEscape(pos[0]), nil); err != nil {
		return err
	}
	fmt.Println("removed", pos[0])
	return nil
}

// appOp is `fota app install|uninstall|activate|deactivate EP NAME`: it
// starts the job on the server and, with --wait, follows it to its end.
func appOp(op string) func([]string) error {
	return func(args []string) error {
		synopsis := "EP NAME"
		example := "fota app " + op + " meter-1 meter-app --wait 30s"
		if op == software.OpInstall {
			synopsis, example = "EP NAME --version V", "fota app install meter-1 meter-app --version 1.2.0 --wait 60s"
		}
		summary := map[string]string{
			software.OpInstall: "Install (or update to) an application version on a device: the device downloads the signed package " +
				"(pull by default, --push to send it), then installs it.",
			software.OpUninstall:  "Uninstall an application from a device and delete its /9 instance.",
			software.OpActivate:   "Activate an installed application on a device.",
			software.OpDeactivate: "Deactivate an application on a device.",
		}[op]
		fs := newFlags("app "+op, synopsis, summary, example)
		api := apiFlags(fs.FlagSet)
		var version *string
		var push *bool
		if op == software.OpInstall {
			version = fs.String("version", "", "the version to install (required)")
			push = fs.Bool("push", false, "push the package (Block1 write of /9/x/2) instead of the device pulling its Package URI")
		}
		wait := fs.Duration("wait", 0, "wait up to this long for the device to finish (0: start it and return)")
		quiet := fs.Bool("q", false, "no progress lines")
		pos, err := fs.parseN(args, 2, 2)
		if err != nil {
			return err
		}
		if version != nil && *version == "" {
			return fs.usageError("--version is required")
		}
		a, err := api()
		if err != nil {
			return err
		}
		q := url.Values{}
		if version != nil {
			q.Set("version", *version)
		}
		if push != nil && *push {
			q.Set("push", "true")
		}
		if *wait > 0 {
			q.Set("timeout", strconv.FormatFloat(wait.Seconds(), 'f', -1, 64))
		}
		base := "/api/clients/" + url.PathEscape(pos[0]) + "/apps/" + url.PathEscape(pos[1])
		out, err := a.do("POST", base+"/"+op+"?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		var job software.Job
		if err := json.Unmarshal(out, &job); err != nil {
			return fmt.Errorf("read answer: %w", err)
		}
		if *wait <= 0 {
			fmt.Printf("%s of %s on %s started (fota app list %s shows the device's state)\n", op, pos[1], pos[0], pos[0])
			return nil
		}
		deadline := time.Now().Add(*wait)
		last := ""
		for {
			line := fmt.Sprintf("%s %s on %s: %s (device: %s, result %d)", op, pos[1], pos[0], job.Phase, updateStateName(job.UpdateState), job.UpdateResult)
			if !*quiet && line != last {
				fmt.Fprintln(os.Stderr, line)
				last = line
			}
			if job.Done {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s of %s on %s not done after %v (phase %s); it goes on on the server: fota app list %s", op, pos[1], pos[0], *wait, job.Phase, pos[0])
			}
			time.Sleep(300 * time.Millisecond)
			out, err := a.do("GET", base+"/job", nil)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(out, &job); err != nil {
				return fmt.Errorf("read answer: %w", err)
			}
		}
		if job.Error != "" {
			return errors.New(op + " of " + pos[1] + " on " + pos[0] + " failed: " + strings.TrimSpace(job.Error))
		}
		ver := ""
		if job.Version != "" {
			ver = " " + job.Version
		}
		fmt.Printf("%s: %s%s on %s (/9/%d)\n", pastTense(op), pos[1], ver, pos[0], job.Instance)
		return nil
	}
}

func pastTense(op string) string {
	if strings.HasSuffix(op, "e") {
		return op + "d"
	}
	return op + "ed"
}
