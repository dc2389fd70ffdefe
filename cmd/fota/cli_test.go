package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
	"time"
)

// The tests run the fota binary itself: the test binary re-executes
// itself with this variable set and runs main's dispatcher, so exit
// codes, stdout and stderr are the real ones.
const runMainEnv = "FOTA_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fotaResult is what one run of the binary did.
type fotaResult struct {
	stdout, stderr string
	code           int
}

// runFota runs `fota args...` with env added to a clean environment (no
// FOTA_* of the developer's shell leaks in) and waits at most timeout.
func runFota(t *testing.T, timeout time.Duration, env []string, args ...string) fotaResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(fotaEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("fota %s: still running after %v; stderr: %s", strings.Join(args, " "), timeout, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fota %s: %v", strings.Join(args, " "), err)
	}
	return fotaResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// fotaEnv is the environment of a child fota: this process's without
// FOTA_*, plus the switch that makes the test binary run main.
func fotaEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FOTA_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	// A race-enabled binary sleeps a second at exit by default (to let
	// racing goroutines report); the children are many and short.
	return append(env, runMainEnv+"=1", "GORACE=atexit_sleep_ms=0")
}

// everyCommand lists `fota NAME` for each registered command and `fota
// NAME SUB` for each sub-command of a group.
func everyCommand() [][]string {
	var out [][]string
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, []string{n})
		if g, ok := commandGroups[n]; ok {
			for _, s := range g.subs {
				out = append(out, []string{n, s.name})
			}
		}
	}
	return out
}

const helpToken = "tok-in-env-7c1f2e"

// Every command and sub-command answers -h and --help on stdout with exit
// status 0: a usage line, its flags and an example; never the API token,
// even when FOTA_API_TOKEN holds it (flag defaults used to print it).
func TestHelpOfEveryCommand(t *testing.T) {
	cmds := everyCommand()
	for _, want := range []string{"server", "bootstrap", "client", "provision", "firmware", "campaign", "device", "demo",
		"fleet", "bench", "delta", "flash", "install", "boot", "version"} {
		if _, ok := commands[want]; !ok {
			t.Errorf("no command %q", want)
		}
	}
	for _, c := range cmds {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, c...), h)
			r := runFota(t, 20*time.Second, []string{"FOTA_API_TOKEN=" + helpToken, "FOTA_PSK_KEY=" + helpToken, "FOTA_BS_PSK_KEY=" + helpToken}, args...)
			name := strings.Join(args, " ")
			if r.code != 0 {
				t.Errorf("fota %s: exit %d, want 0; stderr %q", name, r.code, r.stderr)
				continue
			}
			if strings.Contains(r.stdout+r.stderr, helpToken) {
				t.Errorf("fota %s prints the secret from the environment:\n%s", name, r.stdout)
			}
			if !strings.HasPrefix(r.stdout, "usage: fota "+strings.Join(c, " ")) {
				t.Errorf("fota %s: help does not start with its usage line:\n%s", name, r.stdout)
			}
			if !strings.Contains(r.stdout, "\nexample:\n  fota ") && !strings.Contains(r.stdout, "\nexample:\n  FOTA_") {
				t.Errorf("fota %s: help has no example:\n%s", name, r.stdout)
			}
			if _, group := commandGroups[c[0]]; group && len(c) == 1 {
				if !strings.Contains(r.stdout, "\ncommands:\n") {
					t.Errorf("fota %s: a group's help lists no commands:\n%s", name, r.stdout)
				}
			} else if usage, _, _ := strings.Cut(r.stdout, "\n"); strings.Contains(usage, "[flags]") != strings.Contains(r.stdout, "\nflags:\n  -") {
				t.Errorf("fota %s: the usage line and the flag list disagree:\n%s", name, r.stdout)
			}
		}
	}
	// `fota help NAME` is `fota NAME --help`.
	r := runFota(t, 20*time.Second, nil, "help", "campaign")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: fota campaign") {
		t.Errorf("fota help campaign: exit %d, %q", r.code, r.stdout)
	}
}

// An unknown flag is a usage error: exit status 2 and one line on stderr
// naming the flag, at every level.
func TestUnknownFlagExits2(t *testing.T) {
	for _, c := range everyCommand() {
		args := append(append([]string{}, c...), "--no-such-flag")
		r := runFota(t, 20*time.Second, nil, args...)
		name := strings.Join(args, " ")
		if r.code != 2 {
			t.Errorf("fota %s: exit %d, want 2; stderr %q", name, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "no-such-flag") {
			t.Errorf("fota %s: stderr %q, want one line naming the flag", name, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("fota %s: stdout %q, want nothing", name, r.stdout)
		}
	}
	if r := runFota(t, 10*time.Second, nil, "no-such-command"); r.code != 2 {
		t.Errorf("fota no-such-command: exit %d, want 2", r.code)
	}
	if r := runFota(t, 10*time.Second, nil, "campaign", "no-such-sub"); r.code != 2 || !strings.Contains(r.stderr, "no-such-sub") {
		t.Errorf("fota campaign no-such-sub: exit %d, stderr %q", r.code, r.stderr)
	}
	// A wrong number of positional arguments is a usage error too.
	if r := runFota(t, 10*time.Second, nil, "device", "read", "only-ep"); r.code != 2 || !strings.Contains(r.stderr, "usage: fota device read EP PATH") {
		t.Errorf("fota device read only-ep: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestVersionLine(t *testing.T) {
	rev := "23068a68acefa3849504b747a0f55826edb32c64"
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-05T08:58:00Z"}}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want []string
	}{
		{"go build in a checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261205085800-23068a68acef"}, Settings: vcs},
			[]string{"fota v0.0.0-20261205085800-23068a68acef", "revision 23068a68acef", "2026-12-05T08:58:00Z", "go1.26.8"}},
		{"modified tree", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: append(vcs, debug.BuildSetting{Key: "vcs.modified", Value: "true"})},
			[]string{"fota (devel), revision 23068a68acef", "uncommitted changes"}},
		{"tagged module", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, []string{"fota v1.4.0"}},
		{"go run", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, []string{"fota (devel), no VCS revision recorded"}},
		{"no build info", nil, []string{"fota (devel): no build information"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := versionLine(tc.bi)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("versionLine = %q, want it to contain %q", got, w)
				}
			}
			if regexp.MustCompile(`\bdev\b`).MatchString(got) {
				t.Errorf("versionLine = %q says dev", got)
			}
		})
	}
	// The binary itself answers too (a test binary has no VCS stamp).
	if r := runFota(t, 10*time.Second, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "fota ") {
		t.Errorf("fota version: exit %d, %q", r.code, r.stdout)
	}
}

// A secret comes from --NAME-file first, then --NAME, then the
// environment; a missing or empty file is a usage error, and the error
// never shows the secret.
func TestSecretFlagsPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte("from-file\nsecond line ignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FOTA_TEST_SECRET", "from-env")
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{nil, "from-env", false},
		{[]string{"--s", "from-flag"}, "from-flag", false},
		{[]string{"--s", "from-flag", "--s-file", file}, "from-file", false},
		{[]string{"--s-file", filepath.Join(dir, "missing")}, "", true},
		{[]string{"--s-file", empty}, "", true},
	} {
		fs := newFlags("test", "", "test")
		get := secretFlags(fs.FlagSet, "s", "FOTA_TEST_SECRET", "a `secret`")
		if _, err := fs.parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got, err := get()
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%v: %q, %v; want %q (error %v)", tc.args, got, err, tc.want, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "from-") {
			t.Errorf("%v: error shows the secret: %v", tc.args, err)
		}
	}
}
