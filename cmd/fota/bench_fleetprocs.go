package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fleetProcs is the simulated fleet of `fota bench fleet`: one or more
// `fota fleet` child processes, each running a contiguous range of the
// devices. Several processes are needed where one cannot open a socket
// per device: the open-file limit is per process (20,000 on the project
// machine, and the container may not raise it).
type fleetProcs struct {
	procs      []*fleetProc
	registered chan fleetDone // one value per process, when all its devices registered
	exited     chan error     // one value per process, when it exits
	gone       int            // values taken from exited by the caller
}

type fleetProc struct {
	cmd   *exec.Cmd
	first int
	n     int
}

// fleetDone is what a child reports once all of its devices registered.
type fleetDone struct {
	devices  int
	seconds  float64 // first start to last registration, child clock
	meanMS   float64 // mean start-to-registered
	failures int
	line     string
}

// parseFleetDone reads the fleetAllRegistered line of `fota fleet`.
func parseFleetDone(l string) (fleetDone, error) {
	d := fleetDone{line: l}
	var rate float64
	_, err := fmt.Sscanf(strings.TrimPrefix(l, fleetAllRegistered+": "),
		"%d devices in %f s (%f per s), mean %f ms from start to registered, %d failed attempts",
		&d.devices, &d.seconds, &rate, &d.meanMS, &d.failures)
	if err != nil {
		return d, fmt.Errorf("bench: unexpected fleet line %q: %w", l, err)
	}
	return d, nil
}

// fleetProcesses is how many fleet processes n devices need, given the
// open files one process may hold (perDevice each, 1024 spare).
func fleetProcesses(n int, perDevice uint64, fileLimit uint64) int {
	if fileLimit <= 1024+perDevice {
		return 1
	}
	capacity := int((fileLimit - 1024) / perDevice)
	return (n + capacity - 1) / capacity
}

// startFleetProcs starts procs children of self running `fota fleet`
// with args, splitting devices and the ramp rate between them.
//
// The children run at CPU priority nice (0: as this process). The
// benchmark measures the server; on a real deployment the devices are
// elsewhere, and here, sharing two cores, a fleet of tens of thousands
// of idle clients (their timers, their GC) would otherwise take the CPU
// the server needs to finish handshakes in time.
func startFleetProcs(self string, procs, devices int, rate float64, nice int, args []string) (*fleetProcs, error) {
	f := &fleetProcs{registered: make(chan fleetDone, procs), exited: make(chan error, procs)}
	per := (devices + procs - 1) / procs
	for first := 0; first < devices; first += per {
		n := min(per, devices-first)
		a := append([]string{"fleet", "--first", strconv.Itoa(first), "--devices", strconv.Itoa(n),
			"--rate", strconv.FormatFloat(rate*float64(n)/float64(devices), 'f', -1, 64)}, args...)
		cmd := exec.Command(self, a...)
		if nice != 0 {
			// nice(1) sets the priority before the child starts, so every
			// thread of its runtime has it (setpriority on a running Go
			// process reaches one thread only).
			if path, err := exec.LookPath("nice"); err == nil {
				cmd = exec.Command(path, append([]string{"-n", strconv.Itoa(nice), self}, a...)...)
			}
		}
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			f.stop()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			f.stop()
			return nil, fmt.Errorf("bench: start fleet process for devices %d..%d: %w", first, first+n-1, err)
		}
		p := &fleetProc{cmd: cmd, first: first, n: n}
		f.procs = append(f.procs, p)
		go f.watch(p, out)
	}
	return f, nil
}

// watch reads a child's output until it exits.
func (f *fleetProcs) watch(p *fleetProc, out io.Reader) {
	var lines sync.WaitGroup
	lines.Add(1)
	go func() {
		defer lines.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.HasPrefix(l, fleetAllRegistered):
				d, err := parseFleetDone(l)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					d.devices = p.n
				}
				f.registered <- d
			case strings.HasPrefix(l, "fleet: stopped"):
				if len(f.procs) > 1 {
					l = fmt.Sprintf("fleet (devices %d..%d): %s", p.first, p.first+p.n-1, strings.TrimPrefix(l, "fleet: "))
				}
				fmt.Println(l)
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	lines.Wait()
	err := p.cmd.Wait()
	if err != nil {
		err = fmt.Errorf("fleet process for devices %d..%d: %w", p.first, p.first+p.n-1, err)
	}
	f.exited <- err
}

// stop ends every child (each de-registers its devices on SIGTERM) and
// waits for them, killing those that take longer than 30 s.
func (f *fleetProcs) stop() {
	for _, p := range f.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(30 * time.Second)
	for ; f.gone < len(f.procs); f.gone++ {
		select {
		case <-f.exited:
		case <-deadline:
			for _, p := range f.procs {
				_ = p.cmd.Process.Kill()
			}
			deadline = nil // wait for the rest without a limit: they were killed
			<-f.exited
		}
	}
}

// summary combines the children's reports into one fleetAllRegistered
// line.
func summary(ds []fleetDone) string {
	var n, fails int
	var secs, meanSum float64
	for _, d := range ds {
		n += d.devices
		fails += d.failures
		secs = max(secs, d.seconds)
		meanSum += d.meanMS * float64(d.devices)
	}
	if len(ds) == 1 {
		return ds[0].line
	}
	return fmt.Sprintf("%s: %d devices in %d processes, %.2f s (slowest process), mean %.0f ms from start to registered, %d failed attempts",
		fleetAllRegistered, n, len(ds), secs, meanSum/float64(max(n, 1)), fails)
}
