package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fotastack/fota/server/campaign"
)

// readSSE splits a stream as the API writes it: comments and keep-alives
// skipped, multi-line data joined, the last event without a blank line
// after it dropped (it is incomplete), and errStopStream a clean end.
func TestReadSSE(t *testing.T) {
	stream := ": fota events\n\nevent: status\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: device\ndata: x\ndata: y\n\nevent: stop\ndata: 1\n\nevent: after\ndata: never\n\n"
	var got []string
	err := readSSE(strings.NewReader(stream), func(event, data string) error {
		got = append(got, event+"="+data)
		if event == "stop" {
			return errStopStream
		}
		return nil
	})
	want := []string{`status={"a":1}`, "device=x\ny", "stop=1"}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, err %v; want %q", got, err, want)
	}
	got = nil
	_ = readSSE(strings.NewReader("event: status\ndata: cut"), func(e, d string) error { got = append(got, e); return nil })
	if len(got) != 0 {
		t.Errorf("an event without its blank line was delivered: %q", got)
	}
}

// Into a pipe, --watch writes a line per change of state (no \r bars),
// counts only devices that take part, and ends when the campaign does.
func TestCampaignWatchPlainLines(t *testing.T) {
	st := campaign.Status{Campaign: campaign.Campaign{ID: "c1", State: campaign.Running, Waves: []float64{50, 100}},
		Devices: []campaign.Device{{Endpoint: "a", State: campaign.DeviceQueued}, {Endpoint: "b", State: campaign.DeviceSkipped}, {Endpoint: "c", Wave: 1, State: campaign.DeviceQueued}}}
	var out bytes.Buffer
	w := newCampaignWatch(st, &out, false)
	w.device(campaign.Device{Endpoint: "a", State: campaign.DeviceDownloading, Progress: 10, PackageKind: "delta", PackageSize: 5723})
	w.device(campaign.Device{Endpoint: "a", State: campaign.DeviceDownloading, Progress: 90, PackageKind: "delta", PackageSize: 5723})
	if done, total := w.progress(); done != 0 || total != 1 {
		t.Errorf("progress %d/%d in wave 1, want 0/1 (the skipped device and wave 2 do not count)", done, total)
	}
	w.device(campaign.Device{Endpoint: "a", State: campaign.DeviceSucceeded})
	if ended := w.status(campaign.Status{Campaign: campaign.Campaign{ID: "c1", State: campaign.Running, Wave: 1, Waves: st.Waves}}); ended {
		t.Error("a running campaign ended the watch")
	}
	w.device(campaign.Device{Endpoint: "c", Wave: 1, State: campaign.DeviceFailed, Error: "update result 6"})
	if ended := w.status(campaign.Status{Campaign: campaign.Campaign{ID: "c1", State: campaign.Completed, Wave: 1, Waves: st.Waves}}); !ended {
		t.Error("a completed campaign did not end the watch")
	}
	w.finish()
	s := out.String()
	if strings.Contains(s, "\r") {
		t.Errorf("progress bar drawn into a pipe: %q", s)
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	want := []string{"campaign c1: running, wave 1/2, 3 devices", "a: downloading (delta package, 5723 bytes)", "a: succeeded",
		"campaign c1: running, wave 2/2", "c: failed: update result 6", "campaign c1: completed, wave 2/2"}
	if len(lines) != len(want) {
		t.Fatalf("lines:\n%s\nwant %d", s, len(want))
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d %q, want it to end in %q", i, lines[i], w)
		}
	}
}
