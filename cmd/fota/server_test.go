package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startedFota is a fota process that runs until stopped.
type startedFota struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string // stderr so far
	grew  chan struct{}
	done  chan struct{}
}

// startFota starts `fota args...` (as runFota, but not waiting) and
// stops it with SIGTERM when the test ends.
func startFota(t *testing.T, env []string, args ...string) *startedFota {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(fotaEnv(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &startedFota{cmd: cmd, grew: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.grew <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends the process as Ctrl-C would and waits for it.
func (p *startedFota) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("fota %v did not stop on SIGTERM", p.cmd.Args[1:])
	}
	_ = p.cmd.Wait()
}

// stderr is what the process wrote to stderr so far.
func (p *startedFota) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits for a stderr line matching re and returns its submatches.
func (p *startedFota) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		select {
		case <-p.grew:
		case <-p.done:
			t.Fatalf("fota %v ended before writing %v; stderr:\n%s", p.cmd.Args[1:], re, p.stderr())
		case <-deadline:
			t.Fatalf("fota %v: no line %v in %v; stderr:\n%s", p.cmd.Args[1:], re, timeout, p.stderr())
		}
	}
}

var httpListening = regexp.MustCompile(`msg="http api listening" addr=(\S+)`)

// apiStatus is the status of an authenticated GET.
func apiStatus(t *testing.T, base, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Without FOTA_API_TOKEN or --api-token-file, `fota server` makes a token
// on its first start and writes it beside the database, readable by its
// owner only; it says where, never what. The next start uses the file
// and says nothing. A token from the environment is used as is, written
// nowhere and never logged.
func TestServerAPITokenFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "f.db")
	args := []string{"server", "--db", db, "--coap", "", "--coaps", "127.0.0.1:0", "--http", "127.0.0.1:0"}
	tokenFile := db + ".token"

	first := startFota(t, nil, args...)
	addr := first.waitLine(t, httpListening, 20*time.Second)[1]
	first.waitLine(t, regexp.MustCompile(`wrote a new API token to `+regexp.QuoteMeta(tokenFile)), 10*time.Second)
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(b))
	if len(token) < 32 {
		t.Fatalf("token file holds %q", token)
	}
	base := "http://" + addr
	if c := apiStatus(t, base, token, "/api/clients"); c != http.StatusOK {
		t.Errorf("the token of the file: HTTP %d", c)
	}
	if c := apiStatus(t, base, "wrong", "/api/clients"); c != http.StatusUnauthorized {
		t.Errorf("a wrong token: HTTP %d, want 401", c)
	}
	first.stop(t)
	if strings.Contains(first.stderr(), token) {
		t.Errorf("the server printed its token:\n%s", first.stderr())
	}

	second := startFota(t, nil, args...)
	addr = second.waitLine(t, httpListening, 20*time.Second)[1]
	if c := apiStatus(t, "http://"+addr, token, "/api/clients"); c != http.StatusOK {
		t.Errorf("restart: the file's token gets HTTP %d", c)
	}
	second.stop(t)
	if s := second.stderr(); strings.Contains(s, "wrote") || strings.Contains(s, token) {
		t.Errorf("restart: the server wrote or printed the token again:\n%s", s)
	}

	const envToken = "env-token-5d3c1a9b"
	db2 := filepath.Join(dir, "g.db")
	third := startFota(t, []string{"FOTA_API_TOKEN=" + envToken}, "server", "--db", db2, "--coap", "", "--coaps", "127.0.0.1:0", "--http", "127.0.0.1:0", "-v")
	addr = third.waitLine(t, httpListening, 20*time.Second)[1]
	if c := apiStatus(t, "http://"+addr, envToken, "/api/clients"); c != http.StatusOK {
		t.Errorf("FOTA_API_TOKEN: HTTP %d", c)
	}
	third.stop(t)
	if _, err := os.Stat(db2 + ".token"); !os.IsNotExist(err) {
		t.Errorf("a token from the environment was written to a file: %v", err)
	}
	if strings.Contains(third.stderr(), envToken) {
		t.Errorf("the debug log shows the token:\n%s", third.stderr())
	}
}

// The profiler is off unless `fota server --pprof` asks for it (404), and
// then it answers the API token only (401 without it, the token never in
// the query).
func TestServerPProfFlag(t *testing.T) {
	const token = "pprof-token-7f3e"
	env := []string{"FOTA_API_TOKEN=" + token}
	dir := t.TempDir()
	args := func(db string, extra ...string) []string {
		return append([]string{"server", "--db", filepath.Join(dir, db), "--coap", "", "--coaps", "", "--http", "127.0.0.1:0"}, extra...)
	}
	off := startFota(t, env, args("off.db")...)
	base := "http://" + off.waitLine(t, httpListening, 20*time.Second)[1]
	if c := apiStatus(t, base, token, "/debug/pprof/"); c != http.StatusNotFound {
		t.Errorf("without --pprof, /debug/pprof/ with the token: HTTP %d, want 404", c)
	}
	off.stop(t)

	on := startFota(t, env, args("on.db", "--pprof")...)
	base = "http://" + on.waitLine(t, httpListening, 20*time.Second)[1]
	for _, tc := range []struct {
		token, query string
		want         int
	}{{"", "", 401}, {"wrong", "", 401}, {"", "?token=" + token, 401}, {token, "", 200}} {
		if c := apiStatus(t, base, tc.token, "/debug/pprof/goroutine"+strings.Replace(tc.query, "?", "?debug=1&", 1)); c != tc.want {
			t.Errorf("--pprof, token %q%s: HTTP %d, want %d", tc.token, tc.query, c, tc.want)
		}
	}
}
