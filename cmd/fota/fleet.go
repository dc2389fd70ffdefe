package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fotastack/fota/client/fleet"
	"github.com/fotastack/fota/client/linksim"
)

func init() {
	register("fleet", "run many simulated devices (real clients over DTLS-PSK) against a server", runFleet)
}

// fleetAllRegistered is the line `fota fleet` prints once every device
// has registered; `fota bench fleet` waits for it.
const fleetAllRegistered = "fleet: all registered"

func runFleet(args []string) error {
	fs := newFlags("fleet", "", "Run many simulated devices (real clients, each with its own DTLS-PSK session and socket) against a server. The server must know their credentials: --provision stores them through the HTTP API first.",
		"fota fleet --devices 1000 --server coaps://127.0.0.1:5684 --provision --url http://127.0.0.1:8080")
	devices := fs.Int("devices", 100, "number of devices")
	first := fs.Int("first", 0, "index of the first device (endpoints ep-FIRST ...)")
	serverURI := fs.String("server", "coaps://127.0.0.1:5684", "LwM2M server URI")
	prefix := fs.String("psk-prefix", "fleet-", "PSK identity prefix; identity PREFIXep-N, key derived from prefix and endpoint")
	rate := fs.Float64("rate", 200, "devices started per second (0: all at once)")
	profile := fs.String("profile", "lan", "simulated link: "+strings.Join(linksim.Names(), ", "))
	seed := fs.Uint64("seed", 1, "seed of the link impairments")
	lifetime := fs.Duration("lifetime", 300*time.Second, "registration lifetime")
	provision := fs.Bool("provision", false, "PUT the devices' credentials through the HTTP API (--url, --api-token) first")
	apiURL := fs.String("url", "", "HTTP API base `URL` for --provision (default $FOTA_URL, else http://127.0.0.1:8080)")
	tokenOf := tokenFlags(fs.FlagSet)
	timeout := fs.Duration("timeout", 0, "give up when not all devices registered after this long (0: never)")
	flash := addFleetFlashFlags(fs.FlagSet)
	spread := fs.Bool("spread-loopback", true, "with a server on loopback, bind devices to 127.1.0.1, 127.1.0.2, ... (8000 each): one address has only ~28,000 ephemeral ports")
	perAddress := fs.Int("per-address", 0, "with --spread-loopback: devices per loopback address (default 8000; fewer spread them over more addresses, as a balancer hashing the source address needs)")
	natTimeout := fs.Duration("nat-timeout", 0, "override the profile's NAT binding timeout: an idle device's next datagram leaves from a new port (0: the profile's)")
	exitAfter := fs.Bool("exit", false, "stop (de-registering every device) once all registered, instead of running until interrupted")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *apiURL == "" {
		*apiURL = fleetDefaultURL()
	}
	token, err := tokenOf()
	if err != nil {
		return err
	}
	if *devices <= 0 {
		return &exitError{2, errors.New("--devices must be positive")}
	}
	prof, err := linksim.Lookup(*profile)
	if err != nil {
		return &exitError{2, err}
	}
	if *natTimeout > 0 {
		prof.NATTimeout = *natTimeout
		if prof.Name == "lan" {
			prof.Name = "lan-nat" // a relay per device, to rebind
		}
	}
	if need := fleetFiles(*devices, *profile); raiseFileLimit(need) < need {
		fmt.Fprintf(os.Stderr, "fleet: the open-file limit is below the %d this fleet needs; some devices will fail to open sockets (run several fleet processes with --first)\n", need)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *provision {
		if err := provisionFleet(ctx, *apiURL, token, *prefix, *first, *devices); err != nil {
			return err
		}
		fmt.Printf("fleet: provisioned %d devices\n", *devices)
	}
	fcfg := fleet.Config{
		Devices: *devices, First: *first, ServerURI: *serverURI, PSKPrefix: *prefix,
		Rate: *rate, Profile: prof, Seed: *seed, Lifetime: *lifetime, Logger: log,
		SpreadLoopback: *spread, PerAddress: *perAddress,
	}
	ff, err := flash.open(prof, log)
	if err != nil {
		return err
	}
	if ff != nil {
		defer ff.close()
		if *flash.installs != "" {
			defer func() {
				if err := ff.writeInstalls(*flash.installs); err != nil {
					fmt.Fprintf(os.Stderr, "fleet: --installs: %v\n", err)
				}
			}()
		}
		fwCtx, fwCancel := context.WithCancel(context.Background())
		defer fwCancel()
		ff.configure(fwCtx, &fcfg)
	}
	f, err := fleet.Start(context.Background(), fcfg)
	if err != nil {
		return &exitError{2, err}
	}
	defer func() {
		f.Stop()
		s := f.Stats()
		fmt.Printf("fleet: stopped; registrations %d, failures %d, NAT rebindings %d\n", s.Registrations, s.Failures, s.Rebinds)
	}()
	var deadline <-chan time.Time
	if *timeout > 0 {
		deadline = time.After(*timeout)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	all, hinted := false, false
	lastReport := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			if !all {
				s := f.Stats()
				return fmt.Errorf("fleet: %d of %d devices registered after %v (%d failures)", s.Registered, *devices, *timeout, s.Failures)
			}
		case <-tick.C:
		}
		s := f.Stats()
		if !all && s.Registered >= *devices {
			all = true
			fmt.Println(fleetDoneLine(s))
			if *exitAfter {
				return nil
			}
			continue
		}
		if !all && time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Printf("fleet: %d/%d started, %d registered, %d failed attempts\n", s.Started, *devices, s.Registered, s.Failures)
			if s.Registered == 0 && s.Failures > 0 && !hinted {
				// The usual cause: a server that does not know the fleet's
				// keys. Say so once instead of retrying in silence.
				hinted = true
				how := "run with --provision (it PUTs the keys through the HTTP API: --url, FOTA_API_TOKEN)"
				if *provision {
					how = "the keys were provisioned: check --server and that the server runs"
				}
				fmt.Fprintf(os.Stderr, "fleet: no device has registered yet and every attempt failed; if the server does not know the fleet's PSK identities (prefix %q), %s\n", *prefix, how)
			}
		}
	}
}

// fleetDoneLine is the fleetAllRegistered line; `fota bench fleet` parses
// it (parseFleetDone).
func fleetDoneLine(s fleet.Stats) string {
	took := s.LastRegister.Sub(s.FirstStart).Seconds()
	return fmt.Sprintf("%s: %d devices in %.2f s (%.0f per s), mean %.0f ms from start to registered, %d failed attempts",
		fleetAllRegistered, s.Registered, took, float64(s.Registered)/took, float64(s.MeanRegister.Microseconds())/1000, s.Failures)
}

// filesPerDevice is the sockets one simulated device holds: its own on the
// plain loopback, three through a simulated link (device socket and the
// relay's two).
func filesPerDevice(profile string) uint64 {
	if profile == "lan" {
		return 1
	}
	return 3
}

// fleetFiles is the number of open files a fleet of n devices needs,
// with room for the process itself.
func fleetFiles(n int, profile string) uint64 {
	return uint64(n)*filesPerDevice(profile) + 1024
}

// raiseFileLimit makes room for need open files: each device holds a
// socket (three with a simulated link). It lifts the soft limit to the hard
// one, and the hard one too where the process may (root), since a machine's
// default hard limit (often 20,000 or less) is below a large fleet's need.
// It returns the soft limit now in force.
func raiseFileLimit(need uint64) uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur >= need {
		return l.Cur
	}
	if l.Max < need {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: need, Max: need}); err == nil {
			return need
		}
	}
	l.Cur = l.Max
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur
}

// provisionFleet PUTs each device's PSK credential through the HTTP API
// (PUT /api/security/clients), 16 at a time.
func provisionFleet(ctx context.Context, base, token, prefix string, first, n int) error {
	base = strings.TrimRight(base, "/")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := first; i < first+n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ep, id, key := fleet.Credentials(prefix, i)
			body, _ := json.Marshal(map[string]any{
				"endpoint": ep,
				"tls":      map[string]any{"mode": "psk", "details": map[string]string{"identity": id, "key": hex.EncodeToString(key)}},
			})
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/api/security/clients", bytes.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- fmt.Errorf("provision %s: %w", ep, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("provision %s: HTTP %s", ep, resp.Status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// fleetDefaultURL is $FOTA_URL or the server's default HTTP address.
func fleetDefaultURL() string {
	if u := os.Getenv("FOTA_URL"); u != "" {
		return u
	}
	return "http://127.0.0.1:8080"
}
