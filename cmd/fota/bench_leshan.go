package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fotastack/fota/client/fleet"
)

// leshanPeer is Eclipse Leshan's server demo (2.0.0-M4, the interop
// harness's class path) run as a JVM child of `fota bench fleet
// --against leshan`, so that the same fleet can be measured against it.
type leshanPeer struct {
	cmd   *exec.Cmd
	coaps string // host:port of its DTLS endpoint
	api   string // base URL of its REST API
	log   string
}

// leshanDir is the folder of Leshan's class path: $FOTA_LESHAN_DIR, or
// interop/leshan/target under the working directory (where `mvn -f
// interop/leshan/pom.xml package` builds it).
func leshanDir() (string, error) {
	dir := os.Getenv("FOTA_LESHAN_DIR")
	if dir == "" {
		dir = filepath.Join("interop", "leshan", "target")
	}
	if _, err := os.Stat(filepath.Join(dir, "lib")); err != nil && os.Getenv("FOTA_LESHAN_DIR") == "" {
		// Build the harness as the interop tests do, when Maven is here.
		if mvn, err := exec.LookPath("mvn"); err == nil {
			if _, err := os.Stat(filepath.Join("interop", "leshan", "pom.xml")); err == nil {
				fmt.Println("against leshan: building interop/leshan (mvn package; once)")
				if out, err := exec.Command(mvn, "-B", "-q", "-f", filepath.Join("interop", "leshan", "pom.xml"), "package").CombinedOutput(); err != nil {
					return "", fmt.Errorf("leshan: mvn package of interop/leshan failed: %v: %s", err, lastLine(string(out)))
				}
			}
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "lib")); err != nil || !st.IsDir() {
		return "", fmt.Errorf("leshan: no class path in %s (build it with `mvn -B -q -f interop/leshan/pom.xml package` from the project root, or set FOTA_LESHAN_DIR)", dir)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return "", errors.New("leshan: java is not installed (install a JDK 17, e.g. apt-get install openjdk-17-jdk-headless)")
	}
	return filepath.Abs(dir) // the JVM runs in another folder
}

// freeLocalPort returns a port free on 127.0.0.1 for udp or tcp.
func freeLocalPort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startLeshan starts the demo server in work (it writes its files where
// it runs) and waits until its REST API answers. The JVM runs with its
// defaults (tiered JIT, the collector it picks for this machine), the
// heap bounded at 1 GiB; only the module openings its Gson needs on Java
// 17 are added.
func startLeshan(dir, work string) (*leshanPeer, error) {
	coap, err := freeLocalPort("udp")
	if err != nil {
		return nil, err
	}
	coaps, err := freeLocalPort("udp")
	if err != nil {
		return nil, err
	}
	web, err := freeLocalPort("tcp")
	if err != nil {
		return nil, err
	}
	cp := filepath.Join(dir, "classes") + string(os.PathListSeparator) + filepath.Join(dir, "lib", "*")
	args := []string{"-Xmx1g", "--add-opens", "java.base/java.util=ALL-UNNAMED", "--add-opens", "java.base/java.lang=ALL-UNNAMED",
		"-cp", cp, "org.eclipse.leshan.server.demo.LeshanServerDemo",
		"-lh", "127.0.0.1", "-lp", strconv.Itoa(coap), "-slh", "127.0.0.1", "-slp", strconv.Itoa(coaps),
		"-wh", "127.0.0.1", "-wp", strconv.Itoa(web)}
	l := &leshanPeer{coaps: fmt.Sprintf("127.0.0.1:%d", coaps), api: fmt.Sprintf("http://127.0.0.1:%d/api", web), log: filepath.Join(work, "leshan.log")}
	logf, err := os.Create(l.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	l.cmd = exec.Command("java", args...)
	l.cmd.Dir = work
	l.cmd.Stdout, l.cmd.Stderr = logf, logf
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("leshan: start java: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = l.cmd.Wait(); close(exited) }()
	hc := http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(l.log)
			return nil, fmt.Errorf("leshan: the server demo exited while starting: %s", lastLine(string(b)))
		default:
		}
		if resp, err := hc.Get(l.api + "/clients"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			l.stop()
			return nil, fmt.Errorf("leshan: REST API not up within 90 s (its output: %s)", l.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// provision gives Leshan the fleet's PSK credentials through its REST
// API, 16 requests at a time.
func (l *leshanPeer) provision(prefix string, n int) error {
	hc := http.Client{Timeout: time.Minute}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ep, id, key := fleet.Credentials(prefix, i)
			body, _ := json.Marshal(map[string]any{"endpoint": ep, "psk": map[string]any{"identity": id, "key": hex.EncodeToString(key)}})
			req, _ := http.NewRequest("PUT", l.api+"/security/clients", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					err = fmt.Errorf("%s %s", resp.Status, b)
				}
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("leshan: provision %s: %w", ep, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// cpu is the JVM's user + system CPU time so far (/proc/PID/stat).
func (l *leshanPeer) cpu() (time.Duration, error) { return procCPU(l.cmd.Process.Pid) }

// procCPU reads utime and stime of pid from /proc (clock ticks of 10 ms:
// USER_HZ is 100 on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name (field 2) is in parentheses and may hold spaces.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// heapUsed runs a full GC in the JVM (jcmd GC.run) and returns the bytes
// its heap holds then (jcmd GC.heap_info: the "used" of each space), and
// the process's resident set.
func (l *leshanPeer) heapUsed() (heap, rss uint64, err error) {
	pid := strconv.Itoa(l.cmd.Process.Pid)
	if out, err := exec.Command("jcmd", pid, "GC.run").CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("leshan: jcmd GC.run: %v: %s", err, out)
	}
	out, err := exec.Command("jcmd", pid, "GC.heap_info").CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("leshan: jcmd GC.heap_info: %v: %s", err, out)
	}
	heap = parseHeapInfo(string(out))
	if b, err := os.ReadFile("/proc/" + pid + "/status"); err == nil {
		for _, ln := range strings.Split(string(b), "\n") {
			if f := strings.Fields(ln); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return heap, rss, nil
}

// heapSpaceUsed matches the heap lines of GC.heap_info: G1's
// "garbage-first heap total 262144K, used 21504K" or a generation of the
// serial and parallel collectors ("def new generation total 4928K, used
// 1093K", "tenured generation ...").
var heapSpaceUsed = regexp.MustCompile(`(?m)^\s*(garbage-first heap|def new generation|tenured generation|PSYoungGen|ParOldGen|Shenandoah|ZHeap)\b.*?used (\d+)K`)

func parseHeapInfo(s string) uint64 {
	var used uint64
	for _, m := range heapSpaceUsed.FindAllStringSubmatch(s, -1) {
		k, _ := strconv.ParseUint(m[2], 10, 64)
		used += k << 10
	}
	return used
}

// stop ends the JVM and whatever it started (its process group).
func (l *leshanPeer) stop() {
	if l.cmd == nil || l.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for {
			if err := syscall.Kill(l.cmd.Process.Pid, 0); err != nil {
				close(done)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// leshanResult is what the Leshan leg of the bench measured.
type leshanResult struct {
	devices    int
	cpu        time.Duration
	seconds    float64
	heapPerDev float64
	rssPerDev  float64
	failures   int
}

// benchAgainstLeshan runs the same fleet (same flags, link profile and
// rate) against Leshan's server demo started here, and measures the JVM's
// CPU time over the registration phase and its heap per idle device.
func benchAgainstLeshan(ctx context.Context, self, work, prefix string, devices, nprocs, nice int, rate float64, childArgs []string, timeout time.Duration) (leshanResult, error) {
	var res leshanResult
	dir, err := leshanDir()
	if err != nil {
		return res, err
	}
	l, err := startLeshan(dir, work)
	if err != nil {
		return res, err
	}
	defer l.stop()
	fmt.Printf("against leshan: Leshan server demo 2.0.0-M4 (pid %d) at coaps://%s; provisioning %d PSK credentials\n", l.cmd.Process.Pid, l.coaps, devices)
	if err := l.provision(prefix, devices); err != nil {
		return res, err
	}
	heap0, rss0, err := l.heapUsed()
	if err != nil {
		return res, err
	}
	cpu0, err := l.cpu()
	if err != nil {
		return res, err
	}
	args := append([]string{"--server", "coaps://" + l.coaps}, childArgs...)
	fp, err := startFleetProcs(self, nprocs, devices, rate, nice, args)
	if err != nil {
		return res, err
	}
	defer fp.stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var done []fleetDone
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	start := time.Now()
	for len(done) < len(fp.procs) {
		select {
		case d := <-fp.registered:
			done = append(done, d)
		case err := <-fp.exited:
			fp.gone++
			return res, fmt.Errorf("against leshan: fleet exited before all devices registered: %v", err)
		case <-ctx.Done():
			return res, fmt.Errorf("against leshan: fleet not registered with Leshan within %v (its output: %s)", timeout, l.log)
		case <-progress.C:
			c, _ := l.cpu()
			fmt.Printf("against leshan: registering, %.0f s, JVM CPU %.2f s so far\n", time.Since(start).Seconds(), (c - cpu0).Seconds())
		}
	}
	cpu1, err := l.cpu()
	if err != nil {
		return res, err
	}
	res.devices, res.cpu = devices, cpu1-cpu0
	for _, d := range done {
		res.seconds = max(res.seconds, d.seconds)
		res.failures += d.failures
	}
	fmt.Println("against leshan: " + summary(done))
	// Idle: Leshan keeps its DTLS sessions and registrations; let the
	// last exchanges settle before the heap is measured.
	time.Sleep(3 * time.Second)
	heap1, rss1, err := l.heapUsed()
	if err != nil {
		return res, err
	}
	res.heapPerDev = perDevice(heap1, heap0, devices)
	res.rssPerDev = perDevice(rss1, rss0, devices)
	return res, nil
}
