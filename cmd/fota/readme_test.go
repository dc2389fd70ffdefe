package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock returns the first shell block of README.md's section named
// heading: what a new user pastes line by line.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, heading+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	if start < 0 {
		t.Fatalf("README section %q has no sh block", heading)
	}
	s = s[start+len("```sh\n"):]
	end := strings.Index(s, "```")
	if end < 0 {
		t.Fatalf("the sh block of README section %q does not end", heading)
	}
	return s[:end]
}

// The README's by-hand flow, run from the README's own text in a fresh
// shell (bash -e, a new directory, nothing exported but PATH and where the
// example firmware is): it must end with the device on v2, updated by a
// delta. Only the listen ports are changed, to free ones, and the build
// line builds this checkout.
func TestReadmeByHandFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the README flow: server, device, campaign")
	}
	flow := readmeBlock(t, "## Running the pieces by hand")
	// Then the HTTP API examples against what the flow left running, each
	// curl failing the script on an error answer; the streams are left out.
	var api []string
	for _, line := range strings.Split(readmeBlock(t, "## HTTP API"), "\n") {
		if !strings.Contains(line, "(streams)") {
			api = append(api, line)
		}
	}
	flow += "curl() { command curl -sS --fail-with-body --max-time 20 \"$@\"; echo; }\n" + strings.Join(api, "\n")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Free ports for the README's fixed ones (5683/5684 CoAP, 5783/5784
	// bootstrap, 8080 HTTP), so the test runs beside anything else.
	ports := map[string]string{}
	for _, p := range []string{"5683", "5684", "5783", "5784", "8080"} {
		ports[p] = fmt.Sprint(freePort(t, p == "8080"))
	}
	flow = regexp.MustCompile(`:(5683|5684|5783|5784|8080)\b`).ReplaceAllStringFunc(flow, func(m string) string { return ":" + ports[m[1:]] })
	flow = strings.Replace(flow, "go build -o fota ./cmd/fota", fmt.Sprintf("(cd %q && go build -o %q ./cmd/fota)", root, filepath.Join(dir, "fota")), 1)
	script := "set -e\n" + flow
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = dir
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	// The build line must find this machine's module and build caches
	// under the fresh HOME.
	goenv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOFLAGS").Output()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOFLAGS"} {
		if v := strings.Split(string(goenv), "\n")[i]; v != "" {
			env = append(env, k+"="+v)
		}
	}
	if fw := firmwareDirCandidates(""); len(fw) > 0 {
		for _, d := range fw {
			if abs, err := filepath.Abs(d); err == nil {
				if st, err := os.Stat(abs); err == nil && st.IsDir() {
					env = append(env, "FOTA_FIRMWARE_DIR="+abs)
					break
				}
			}
		}
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	// The flow leaves the server and the device running in the
	// background, as a user's shell would: stop them.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	logs := ""
	for _, f := range []string{"server.log", "meter-1.log"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			logs += fmt.Sprintf("\n--- %s (last lines)\n%s", f, lastLines(string(b), 15))
		}
	}
	if err != nil {
		t.Fatalf("README flow failed: %v\n%s%s", err, out.String(), logs)
	}
	got := out.String()
	if !strings.Contains(got, "2.0") || !strings.Contains(got, "delta") {
		t.Fatalf("README flow ended without the device on 2.0 by a delta:\n%s%s", got, logs)
	}
	t.Logf("README flow:\n%s", got)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a port free on 127.0.0.1 now (TCP or UDP).
func freePort(t *testing.T, tcp bool) int {
	t.Helper()
	if tcp {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}
