package main

import (
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/client/fleet"
)

// The bench reads what `fota fleet` prints; both sides use one format.
func TestParseFleetDone(t *testing.T) {
	t0 := time.Now()
	line := fleetDoneLine(fleet.Stats{Registered: 18000, Failures: 3, FirstStart: t0, LastRegister: t0.Add(90 * time.Second), MeanRegister: 12 * time.Millisecond})
	d, err := parseFleetDone(line)
	if err != nil {
		t.Fatal(err)
	}
	if d.devices != 18000 || d.failures != 3 || d.seconds != 90 || d.meanMS != 12 {
		t.Fatalf("parsed %+v from %q", d, line)
	}
	if _, err := parseFleetDone(fleetAllRegistered + ": garbage"); err == nil {
		t.Fatal("garbage line parsed")
	}
	two := summary([]fleetDone{d, {devices: 2000, seconds: 95, meanMS: 2, failures: 1}})
	if !strings.Contains(two, "20000 devices in 2 processes, 95.00 s") || !strings.Contains(two, "mean 11 ms") || !strings.Contains(two, "4 failed attempts") {
		t.Fatalf("summary %q", two)
	}
}

func TestFleetProcesses(t *testing.T) {
	for _, c := range []struct {
		n         int
		per, lim  uint64
		wantProcs int
	}{
		{100000, 1, 20000, 6},  // 18,976 devices a process
		{18000, 1, 20000, 1},   // fits
		{100000, 3, 20000, 16}, // a simulated link: three sockets a device
		{10, 1, 100, 1},        // a limit too small to split by: one process, which warns
	} {
		if got := fleetProcesses(c.n, c.per, c.lim); got != c.wantProcs {
			t.Errorf("fleetProcesses(%d, %d, %d) = %d, want %d", c.n, c.per, c.lim, got, c.wantProcs)
		}
	}
}
