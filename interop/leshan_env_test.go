package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
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

// The Leshan interop tests run Eclipse Leshan's processes (the server demo,
// and our harnesses over Leshan's client and bootstrap libraries, built by
// interop/leshan/pom.xml) against our binary, built from ./cmd/fota and
// run as `fota server`, `fota client`, ... Everything listens on 127.0.0.1
// on free ports; every process runs in its own process group, killed at
// the end of its test.

// leshanVersion is the Leshan release interop/leshan/pom.xml resolves (and
// interop/README.md names in its table).
const leshanVersion = "2.0.0-M4"

var (
	fotaOnce sync.Once
	fotaPath string
	fotaErr  error
	fotaDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fotaDir != "" {
		os.RemoveAll(fotaDir)
	}
	os.Exit(code)
}

// fotaBin builds ./cmd/fota once per test binary and returns its path.
func fotaBin(t *testing.T) string {
	t.Helper()
	fotaOnce.Do(func() {
		fotaDir, fotaErr = os.MkdirTemp("", "fota-interop-")
		if fotaErr != nil {
			return
		}
		fotaPath = filepath.Join(fotaDir, "fota")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", fotaPath, "../cmd/fota").CombinedOutput()
		if err != nil {
			fotaErr = fmt.Errorf("go build ./cmd/fota: %v\n%s", err, out)
		}
	})
	if fotaErr != nil {
		t.Fatal(fotaErr)
	}
	return fotaPath
}

// leshanDir is where interop/leshan/pom.xml put its build: classes/ (our
// harnesses) and lib/ (Leshan and its dependencies). $FOTA_LESHAN_DIR
// (set by .ci/run) overrides the default interop/leshan/target. Without
// Java or that folder the test skips on a developer's machine and fails
// where FOTA_INTEROP_REQUIRED=1 (CI).
func leshanDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FOTA_LESHAN_DIR")
	if dir == "" {
		dir = filepath.Join("leshan", "target")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("FOTA_LESHAN_DIR") == "" {
		buildLeshan(t, abs)
	}
	missing := ""
	if _, err := exec.LookPath("java"); err != nil {
		missing = "java is not installed (install a JDK 17, e.g. apt-get install openjdk-17-jdk-headless)"
	} else if _, err := os.Stat(filepath.Join(abs, "lib", "leshan-server-demo-"+leshanVersion+".jar")); err != nil {
		missing = fmt.Sprintf("no Leshan %s in %s (install Maven and run: mvn -B -q -f interop/leshan/pom.xml package)", leshanVersion, abs)
	} else if _, err := os.Stat(filepath.Join(abs, "classes", "io", "fotastack", "interop", "LeshanClientMain.class")); err != nil {
		missing = fmt.Sprintf("our Leshan harnesses are not built in %s (run: mvn -B -q -f interop/leshan/pom.xml package)", abs)
	}
	if missing != "" {
		if os.Getenv("FOTA_INTEROP_REQUIRED") == "1" {
			t.Fatalf("FOTA_INTEROP_REQUIRED=1 but %s", missing)
		}
		t.Skip(missing)
	}
	return abs
}

var leshanBuild sync.Once

// buildLeshan runs Maven on interop/leshan/pom.xml once per test binary
// when the default folder is not built yet and mvn is installed (Maven's
// cache makes it quick after the first time). Its failure is reported by
// leshanDir's checks that follow.
func buildLeshan(t *testing.T, abs string) {
	leshanBuild.Do(func() {
		if _, err := os.Stat(filepath.Join(abs, "classes", "io", "fotastack", "interop", "LeshanBootstrapMain.class")); err == nil {
			return
		}
		mvn, err := exec.LookPath("mvn")
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, mvn, "-B", "-q", "-f", filepath.Join("leshan", "pom.xml"), "package").CombinedOutput()
		if err != nil {
			t.Logf("mvn -f interop/leshan/pom.xml package: %v\n%s", err, out)
		}
	})
}

// freeUDPPort and freeTCPPort return a port on 127.0.0.1 that was free a
// moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// randomHex is n random bytes in hex (PSK keys, tokens).
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// proc is a process of a test, in its own process group. Its stdout lines
// are kept for waitLine; stdout and stderr also go to a log file that is
// printed when the test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string

	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced when a line arrives
	done  chan struct{} // closed when the process exited
	stdin io.WriteCloser
}

// startProc starts cmd (its Env, Dir set by the caller) and stops it when
// the test ends: SIGTERM to its process group, SIGKILL after 5 s.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, log: filepath.Join(t.TempDir(), name+".log"), more: make(chan struct{}), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var readDone sync.WaitGroup
	readDone.Add(1)
	go func() {
		defer readDone.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	go func() {
		readDone.Wait()
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("--- %s (last output) ---\n%s", name, b)
			}
		}
	})
	return p
}

// stop ends the process group: SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	_ = p.stdin.Close()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// send writes one command line to the process's stdin.
func (p *proc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("%s: write %q: %v", p.name, line, err)
	}
}

// waitLine waits for a stdout line (after the first `from` lines) that
// matches re and returns it with its index; it fails the test after d.
func (p *proc) waitLine(t *testing.T, from int, re string, d time.Duration) (string, int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if rx.MatchString(p.lines[i]) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, i
			}
		}
		from = len(p.lines)
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			// drain what was read before the exit
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if from >= n {
				t.Fatalf("%s exited before printing a line matching %q", p.name, re)
			}
		case <-deadline.C:
			t.Fatalf("%s: no line matching %q within %v", p.name, re, d)
		}
	}
}

// lineCount is how many stdout lines the process printed so far.
func (p *proc) lineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// java runs a class of the Leshan folder's class path. Java 17 needs
// java.util opened for the Leshan demo's Gson serialisation.
func javaCmd(dir, class string, args ...string) *exec.Cmd {
	cp := filepath.Join(dir, "classes") + string(os.PathListSeparator) + filepath.Join(dir, "lib", "*")
	a := []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m",
		"--add-opens", "java.base/java.util=ALL-UNNAMED", "--add-opens", "java.base/java.lang=ALL-UNNAMED",
		"-cp", cp, class}
	return exec.Command("java", append(a, args...)...)
}

// httpJSON sends body (JSON-encoded unless []byte) and returns the status
// and the answer.
func httpJSON(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case typedBody:
		rd, ct = bytes.NewReader(b.data), b.contentType
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 90 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// typedBody is a request body with its own media type.
type typedBody struct {
	contentType string
	data        []byte
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	Type string
	Data string
}

// subscribe reads the Server-Sent Events at url until the test ends.
func subscribe(t *testing.T, url, token string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe %s: %v", url, err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		t.Fatalf("subscribe %s: %s", url, resp.Status)
	}
	ch := make(chan sseEvent, 1024)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				ev.Type = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				ev.Data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			case line == "":
				if ev.Type != "" || ev.Data != "" {
					select {
					case ch <- ev:
					default: // a test that does not read loses events, never blocks the stream
					}
				}
				ev = sseEvent{}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		wg.Wait()
	})
	return ch
}

// waitEvent waits for an event of type typ whose data contains all of
// subs; it fails the test after d.
func waitEvent(t *testing.T, ch <-chan sseEvent, typ string, d time.Duration, subs ...string) sseEvent {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended before a %s event %q", typ, subs)
			}
			if ev.Type != typ {
				continue
			}
			all := true
			for _, s := range subs {
				all = all && strings.Contains(ev.Data, s)
			}
			if all {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("no %s event with %q within %v", typ, subs, d)
		}
	}
}

// poll calls f every 100 ms until it returns true; it fails the test
// with what f last said after d.
func poll(t *testing.T, d time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, why := f()
		if ok {
			return
		}
		last = why
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, d, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fotaServer is our `fota server` with its bootstrap server and firmware
// repository, on free ports of 127.0.0.1.
type fotaServer struct {
	p                 *proc
	api, token        string
	coap, coaps       string // host:port
	bsCoap, bsCoaps   string
	firmwarePublicKey string
	bin, dir          string
}

func startFotaServer(t *testing.T, extra ...string) *fotaServer {
	t.Helper()
	bin := fotaBin(t)
	dir := t.TempDir()
	s := &fotaServer{token: randomHex(t, 16), bin: bin, dir: dir}
	s.coap = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	s.coaps = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	s.bsCoap = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	s.bsCoaps = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	s.api = "http://" + httpAddr
	args := []string{"server", "--db", filepath.Join(dir, "fota.db"), "--coap", s.coap, "--coaps", s.coaps,
		"--http", httpAddr, "--bootstrap-coap", s.bsCoap, "--bootstrap-coaps", s.bsCoaps}
	cmd := exec.Command(bin, append(args, extra...)...)
	// The token goes by environment, never on the command line.
	cmd.Env = append(os.Environ(), "FOTA_API_TOKEN="+s.token)
	s.p = startProc(t, "fota-server", cmd)
	poll(t, 20*time.Second, "fota server HTTP API up", func() (bool, string) {
		req, _ := http.NewRequest("GET", s.api+"/api/firmware/key", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := (&http.Client{Timeout: time.Second}).Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var k struct {
			PublicKey string `json:"publicKey"`
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&k) != nil {
			return false, resp.Status
		}
		s.firmwarePublicKey = k.PublicKey
		return true, ""
	})
	return s
}

// do calls our HTTP API.
func (s *fotaServer) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	return httpJSON(t, method, s.api+path, s.token, body)
}

// addPSK stores a DM credential of endpoint ep.
func (s *fotaServer) addPSK(t *testing.T, ep, identity, keyHex string) {
	t.Helper()
	cred := map[string]any{"endpoint": ep, "tls": map[string]any{"mode": "psk", "details": map[string]any{"identity": identity, "key": keyHex}}}
	if code, b := s.do(t, "PUT", "/api/security/clients", cred); code/100 != 2 {
		t.Fatalf("our API: add PSK of %s: %d %s", ep, code, b)
	}
}

// cli runs a `fota` CLI command against the server's API and returns its
// output.
func (s *fotaServer) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = append(os.Environ(), "FOTA_URL="+s.api, "FOTA_API_TOKEN="+s.token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fota %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// apiResult is the part of our API's device answers the tests read.
type apiResult struct {
	Status  string `json:"status"`
	Code    string `json:"code"`
	Success bool   `json:"success"`
	Format  string `json:"format"`
	Entries []struct {
		Path  string `json:"path"`
		Type  string `json:"type"`
		Value any    `json:"value"`
	} `json:"entries"`
	Payload string          `json:"payload"`
	Content json.RawMessage `json:"content"`
	Error   string          `json:"error"`
}

func (r apiResult) value(path string) (any, bool) {
	for _, e := range r.Entries {
		if e.Path == path {
			return e.Value, true
		}
	}
	return nil, false
}

// deviceOp calls our API on a device and decodes its answer.
func (s *fotaServer) deviceOp(t *testing.T, method, path string, body any) (int, apiResult, string) {
	t.Helper()
	code, b := s.do(t, method, path, body)
	var r apiResult
	_ = json.Unmarshal(b, &r)
	return code, r, string(b)
}

// pki is a test CA with a server certificate (CN and IP 127.0.0.1) and a
// client certificate whose CN is an endpoint name, written as files: PEM
// for our server, DER (and PKCS#8 for the key) for Leshan.
type pki struct {
	caPEM, serverPEM, serverKeyPEM  string
	serverDER, clientDER, clientKey string
}

func makePKI(t *testing.T, endpoint string) pki {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, srvKey, cliKey := newKey(), newKey(), newKey()
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fota interop test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, key *ecdsa.PrivateKey, ip bool, usage ...x509.ExtKeyUsage) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage}
		if ip {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	srvDER := leaf(2, "127.0.0.1", srvKey, true, x509.ExtKeyUsageServerAuth)
	// Scandium (Leshan's DTLS) builds one connector for both roles and
	// wants serverAuth in the client's certificate too.
	cliDER := leaf(3, endpoint, cliKey, false, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth)
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	cliPKCS8, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	return pki{
		caPEM:        write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		serverPEM:    write("server.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})),
		serverKeyPEM: write("server.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER})),
		serverDER:    write("server.der", srvDER),
		clientDER:    write("client.der", cliDER),
		clientKey:    write("client.key.der", cliPKCS8),
	}
}
