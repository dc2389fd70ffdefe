package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/fotastack/fota/server/store"
)

func init() {
	register("audit", "the audit trail of a running server: who changed what, when", runAudit)
}

func runAudit(args []string) error {
	fs := newFlags("audit", "", "The audit trail of a running server: the API calls that changed something, who made them, when, how they ended.",
		"fota audit --since 1h", "fota audit --json")
	api := apiFlags(fs.FlagSet)
	limit := fs.Int("limit", 100, "show the newest `N` entries")
	since := fs.Duration("since", 0, "only entries of the last `duration` (as 1h)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *since > 0 {
		q.Set("since", time.Now().Add(-*since).UTC().Format(time.RFC3339))
	}
	out, err := a.do("GET", "/api/audit?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err = os.Stdout.Write(out)
		return err
	}
	var es []store.AuditEntry
	if err := json.Unmarshal(out, &es); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tSTATUS\tFROM")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Time.Local().Format(time.DateTime), e.Actor, e.Action, e.Status, e.Remote)
	}
	return tw.Flush()
}
