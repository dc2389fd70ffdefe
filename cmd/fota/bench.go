package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fotastack/fota/client/fleet"
	"github.com/fotastack/fota/client/linksim"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/bolt"
)

func init() {
	registerGroup(benchGroup, "benchmarks of the whole stack: bench fleet (server memory and CPU per device)")
}

// benchGroup is `fota bench`.
var benchGroup = group{
	name:    "bench",
	summary: "Benchmarks of the whole stack (the delta benchmark is fota delta bench).",
	subs: []subcommand{
		{name: "fleet", args: "[--devices N] [--profile lan|lte-m|nb-iot] [--campaign]", summary: "server memory and CPU per device, with a fleet of real clients in child processes", run: benchFleet},
		{name: "cluster", args: "--store DSN [--devices N] [--nodes 1,2,3]", summary: "registrations per second, campaign time and the database's cost per registration with one, two and three cluster nodes", run: benchCluster},
	},
	examples: []string{"fota bench fleet --devices 5000", "fota bench fleet --campaign --devices 20", "fota bench cluster --store postgres://fota@127.0.0.1:5432/postgres"},
}

// memSample is the server's memory: heap in use and goroutine stacks (what
// an idle device costs), and the process's resident set.
type memSample struct {
	heap, stack, rss uint64
	live             uint64 // HeapAlloc: bytes of live objects (heap minus fragmentation)
	goroutines       int
}

func sampleMemory() memSample {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSample{heap: m.HeapInuse, live: m.HeapAlloc, stack: m.StackInuse, rss: residentBytes(), goroutines: runtime.NumGoroutine()}
}

// residentBytes reads VmRSS from /proc/self/status (0 where there is none).
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the user and system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func perDevice(after, before uint64, n int) float64 {
	if after < before {
		return 0
	}
	return float64(after-before) / float64(n)
}

func benchFleet(args []string) error {
	if os.Getenv("FOTA_MEMPROFILE_RATE") == "1" {
		runtime.MemProfileRate = 1
	}
	fs := newFlags("bench fleet", "", "Run the server in this process and a fleet of real clients (own DTLS-PSK session and socket each) in child processes; report server memory and CPU per device (--campaign: then a delta campaign to the fleet).",
		"fota bench fleet --devices 5000", "fota bench fleet --campaign --devices 20 --profile nb-iot")
	devices := fs.Int("devices", 1000, "number of devices")
	profile := fs.String("profile", "lan", "simulated link of the devices: "+strings.Join(linksim.Names(), ", "))
	rate := fs.Float64("rate", 250, "devices started per second (both processes share the machine: above what it can handshake, devices time out and retry)")
	hibernate := fs.Duration("hibernate-after", time.Second, "server: hibernate sessions idle this long")
	campaign := fs.Bool("campaign", false, "then run a delta campaign (pull over coaps) to the whole fleet; with it, --profile defaults to nb-iot and --devices to 20")
	pullWindow := fs.Int("pull-window", benchPullWindow, "with --campaign: the Block2 window (NSTART) the server grants the devices for their pull; 1 is stop-and-wait")
	campaignTimeout := fs.Duration("campaign-timeout", time.Hour, "give up the campaign after this long")
	timeout := fs.Duration("timeout", 200*time.Second, "give up when the fleet has not registered after this long")
	fleetNice := fs.Int("fleet-nice", 10, "CPU priority (nice) of the fleet processes: the server, which is measured, goes first on a shared machine; 0 runs them at the bench's own")
	procs := fs.Int("processes", 0, "fleet processes (0: as many as the open-file limit needs, one socket per device)")
	lifetime := fs.Duration("lifetime", 0, "registration lifetime of the devices (0: 300 s, or twice the ramp-up when that is longer, so the idle figures are not taken during a burst of registration updates)")
	cpuProfile := fs.String("cpuprofile", "", "write the server's CPU profile of the registration phase to `file`")
	memProfile := fs.String("memprofile", "", "write the server's heap profile, taken when the fleet is idle, to `file`")
	against := fs.String("against", "", "then run the same fleet against a peer server started here and compare CPU and memory per device: leshan (Eclipse Leshan's server demo; needs java and interop/leshan/target, or FOTA_LESHAN_DIR)")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *campaign && !set["profile"] {
		*profile = "nb-iot"
	}
	if *campaign && !set["devices"] {
		*devices = 20
	}
	if *devices <= 0 {
		return &exitError{2, errors.New("--devices must be positive")}
	}
	if *against != "" && *against != "leshan" {
		return &exitError{2, fmt.Errorf("--against %q: the one peer known is leshan", *against)}
	}
	if *against != "" {
		if _, err := leshanDir(); err != nil {
			return &exitError{2, err}
		}
	}
	if _, err := linksim.Lookup(*profile); err != nil {
		return &exitError{2, err}
	}
	if *lifetime == 0 {
		*lifetime = 300 * time.Second
		if *rate > 0 {
			*lifetime = max(*lifetime, 2*time.Duration(float64(*devices) / *rate * float64(time.Second)).Round(time.Second))
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: own executable: %w", err)
	}
	// Where this process may raise its open-file limit (its children
	// inherit it), one fleet process holds the whole fleet.
	limit := raiseFileLimit(fleetFiles(*devices, *profile))

	// A temporary bbolt file, on tmpfs where there is one: the benchmark
	// measures the protocol stack, not the disk's fsync.
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "fota-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := bolt.Open(filepath.Join(dir, "fota.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	prefix := fmt.Sprintf("bench%d-", time.Now().UnixNano()%100000)
	if err := provisionStore(st, prefix, *devices); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	prof, _ := linksim.Lookup(*profile)
	hsTimeout := 10 * time.Second
	if prof.RTT() > 0 {
		// Over a slow link, hibernate only sessions quiet for many round
		// trips (an exchange in progress must not lose its state), and
		// give handshakes (three round trips, retransmitted flights) time.
		*hibernate = max(*hibernate, 10*(prof.RTT()+prof.Jitter))
		hsTimeout = max(hsTimeout, 20*(prof.RTT()+prof.Jitter))
	}
	srv, err := server.Start(server.Config{Store: st, HTTPAddr: "127.0.0.1:0", APIToken: "bench", Campaign: benchCampaignConfig(prof, *pullWindow), Config: dm.Config{CoAPSAddr: "127.0.0.1:0", HibernateAfter: *hibernate, HandshakeTimeout: hsTimeout, Logger: log, Transmission: dm.TransmissionConfig{ByType: dm.DefaultTransmissions()}}})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("bench fleet: %d devices, profile %s, server %s, GOMAXPROCS %d\n", *devices, *profile, srv.CoAPSAddr(), runtime.GOMAXPROCS(0))

	if *cpuProfile != "" {
		if f, err := os.Create(*cpuProfile); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer f.Close()
				defer pprof.StopCPUProfile() // also stopped when the registration phase ends
			}
		}
	}
	base0 := sampleMemory()
	cpu0 := cpuTime()
	hs0 := srv.DTLSStats().Handshakes

	// Interrupted, the bench still stops its fleet processes (they
	// de-register) and removes its temporary store.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(sigCtx, *timeout)
	defer cancel()
	childArgs := []string{"--server", "coaps://" + srv.CoAPSAddr().String(),
		"--psk-prefix", prefix, "--profile", *profile, "--lifetime", lifetime.String()}
	var bc *benchCampaign
	if *campaign {
		var args []string
		if bc, args, err = prepareBenchCampaign(srv, dir, prof, os.Stdout); err != nil {
			return err
		}
		childArgs = append(childArgs, args...)
	}
	perDev := filesPerDevice(*profile)
	nprocs := *procs
	if nprocs <= 0 {
		nprocs = fleetProcesses(*devices, perDev, limit)
	}
	if nprocs > 1 {
		fmt.Printf("bench fleet: %d fleet processes (open-file limit %d, %d per device)\n", nprocs, limit, perDev)
	}
	fp, err := startFleetProcs(self, nprocs, *devices, *rate, *fleetNice, childArgs)
	if err != nil {
		return err
	}

	// Registration phase: handshakes and registrations per second, CPU.
	start := time.Now()
	var firstHS, lastHS time.Time
	var done []fleetDone
	lastReport := start
	tick := time.NewTicker(20 * time.Millisecond)
wait:
	for {
		select {
		case d := <-fp.registered:
			if done = append(done, d); len(done) == len(fp.procs) {
				break wait
			}
		case err := <-fp.exited:
			fp.gone++
			tick.Stop()
			fp.stop()
			return fmt.Errorf("bench: fleet exited before all devices registered: %v", err)
		case <-ctx.Done():
			tick.Stop()
			fp.stop()
			if sigCtx.Err() != nil {
				return errors.New("bench: interrupted")
			}
			return fmt.Errorf("bench: fleet not registered within %v (server: %+v)", *timeout, srv.DTLSStats())
		case <-tick.C:
			st := srv.DTLSStats()
			hs := st.Handshakes
			if time.Since(lastReport) >= 10*time.Second {
				lastReport = time.Now()
				fmt.Printf("registering: %d/%d handshakes done, %d refused, %d sessions (%d hibernated), %.0f s\n",
					hs-hs0, *devices, st.Refused, st.Associations, st.Asleep, time.Since(start).Seconds())
			}
			if firstHS.IsZero() && hs > hs0 {
				firstHS = time.Now()
			}
			if lastHS.IsZero() && hs-hs0 >= int64(*devices) {
				lastHS = time.Now()
			}
		}
	}
	tick.Stop()
	regEnd := time.Now()
	pprof.StopCPUProfile()
	cpuReg := cpuTime() - cpu0
	stats := srv.DTLSStats()
	n := len(srv.Devices())
	if firstHS.IsZero() {
		firstHS = start
	}
	if lastHS.IsZero() {
		lastHS = regEnd
	}
	window := lastHS.Sub(firstHS).Seconds()
	live := sampleMemory()

	// Idle phase: every session hibernates.
	idleDeadline := time.Now().Add(*hibernate + 60*time.Second)
	for srv.DTLSStats().Asleep < *devices && time.Now().Before(idleDeadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // let closed connections' goroutines end
	debug.FreeOSMemory()
	idle := sampleMemory()
	after := srv.DTLSStats()
	if *memProfile != "" {
		if f, err := os.Create(*memProfile); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}

	idleKiB := (perDevice(idle.heap, base0.heap, *devices) + perDevice(idle.stack, base0.stack, *devices)) / 1024
	fmt.Printf("server memory: %.1f KiB per idle device (heap %.0f B + stacks %.0f B per device; %d of %d sessions hibernated; target <= 16)\n",
		idleKiB, perDevice(idle.heap, base0.heap, *devices), perDevice(idle.stack, base0.stack, *devices), after.Asleep, *devices)
	fmt.Println(summary(done))
	fmt.Printf("server live heap objects when idle: %.0f B per device (the rest of the heap in use is fragmentation left by the live sessions)\n", perDevice(idle.live, base0.live, *devices))
	fmt.Printf("handshakes: %d in %.2f s, %.0f per s (server clock; ramp rate %.0f devices/s)\n",
		stats.Handshakes-hs0, window, float64(stats.Handshakes-hs0)/window, *rate)
	fmt.Printf("registrations: %d devices registered, %.0f per s\n", n, float64(n)/window)
	fmt.Printf("server CPU: %.0f us per handshake + registration (%.2f s CPU for %d, process CPU time, not wall; target <= 300 us)\n",
		float64(cpuReg.Microseconds())/float64(max(n, 1)), cpuReg.Seconds(), n)
	fmt.Printf("server heap+stacks just after registration (live sessions): %.0f B per registered device; RSS %.0f B per registered device\n",
		perDevice(live.heap+live.stack, base0.heap+base0.stack, *devices), perDevice(live.rss, base0.rss, *devices))
	fmt.Printf("server when idle: RSS %.0f B per device, goroutines %d (baseline %d), hibernations %d, resumptions %d\n",
		perDevice(idle.rss, base0.rss, *devices), idle.goroutines, base0.goroutines, after.Hibernations, after.Resumptions)

	if *against == "leshan" {
		// The same fleet again (same processes, flags, link profile and
		// rate), now against Leshan. Ours stops first: its devices
		// de-register and its CPU is no longer taken.
		fp.stop()
		lr, err := benchAgainstLeshan(sigCtx, self, dir, prefix, *devices, nprocs, *fleetNice, *rate, childArgs[2:], *timeout)
		if err != nil {
			return err
		}
		ours := float64(n) / cpuReg.Seconds()
		theirs := float64(lr.devices) / lr.cpu.Seconds()
		fmt.Printf("leshan CPU: %.0f us per handshake + registration (%.2f s JVM CPU for %d, from /proc, JIT and GC threads included), %d failed attempts\n",
			float64(lr.cpu.Microseconds())/float64(max(lr.devices, 1)), lr.cpu.Seconds(), lr.devices, lr.failures)
		fmt.Printf("memory per idle device: ours %.1f KiB (heap + stacks after GC, sessions hibernated), leshan %.1f KiB (JVM heap used after a full GC; RSS grew %.1f KiB per device)\n",
			idleKiB, lr.heapPerDev/1024, lr.rssPerDev/1024)
		fmt.Printf("against leshan: ours %.0f, leshan %.0f registrations per CPU second, ratio %.2f (target >= 3; CPU time of each server process, the machine's 2 cores shared, so noisy)\n",
			ours, theirs, ours/theirs)
		return nil
	}
	if bc != nil {
		eps := make([]string, *devices)
		for i := range eps {
			eps[i], _, _ = fleet.Credentials(prefix, i)
		}
		cctx, ccancel := context.WithTimeout(sigCtx, *campaignTimeout)
		blocks0, bytes0 := srv.Firmware.Block2Stats()
		res, err := bc.run(cctx, eps, os.Stdout)
		ccancel()
		if blocks, bytes := srv.Firmware.Block2Stats(); err == nil {
			// More blocks than the package has per device are blocks sent
			// again: answers to retransmitted or repeated requests.
			fmt.Printf("campaign: server sent %d Block2 blocks (%.1f per device), %d bytes\n", blocks-blocks0, float64(blocks-blocks0)/float64(len(eps)), bytes-bytes0)
		}
		if err != nil {
			fp.stop()
			return err
		}
		res.print(os.Stdout, prof)
		if res.Succeeded != res.Devices {
			fp.stop()
			return &exitError{1, fmt.Errorf("campaign: %d of %d devices did not end on %s", res.Devices-res.Succeeded, res.Devices, demoV2)}
		}
	}
	fp.stop()
	return nil
}

// provisionStore writes the fleet's PSK credentials into the store, 32 at
// a time.
func provisionStore(st store.Store, prefix string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ep, id, key := fleet.Credentials(prefix, i)
			if err := st.PutCredential(store.Credential{Endpoint: ep, Mode: "psk", Identity: id, Key: key}); err != nil {
				errs <- fmt.Errorf("provision %s: %w", ep, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
