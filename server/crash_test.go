package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/store/bolt"
)

// crashChildEnv makes TestRegistrationSurvivesCrash's child run a server.
const crashChildEnv = "FOTA_TEST_CRASH_CHILD_DB"

// A registration answered 2.01 is on disk: 40 devices register at once
// (so that bbolt's group commit puts several in one transaction) with a
// server in a child process on a real bbolt file (not tmpfs); the moment
// the last 2.01 arrives the child is killed with SIGKILL, no shutdown of
// any kind. The file, reopened, holds every registration. (A process
// crash keeps what was written to the kernel: this catches a 2.01 sent
// before the registration's transaction committed, e.g. a write queued
// behind the answer; that the commit is also fsynced before the answer,
// for a power cut, is bbolt's Batch contract, which PutRegistration uses.)
func TestRegistrationSurvivesCrash(t *testing.T) {
	if db := os.Getenv(crashChildEnv); db != "" {
		runCrashChild(db)
		return
	}
	const n = 40
	dir, err := os.MkdirTemp(".", "crash-test-") // the package folder: a disk, where /tmp may be tmpfs
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db := filepath.Join(dir, "fota.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRegistrationSurvivesCrash$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+db)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "coap "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("child server did not start")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	registered := map[string]bool{}
	var clients []*client.Client
	start := make(chan struct{})
	for i := range n {
		ep := fmt.Sprintf("crash-%02d", i)
		done := make(chan struct{})
		var once sync.Once
		c, err := client.New(client.Config{Endpoint: ep, ServerURI: "coap://" + addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnEvent: func(e client.Event) {
				if e.Kind == client.EventRegistered {
					mu.Lock()
					registered[ep] = true
					mu.Unlock()
					once.Do(func() { close(done) })
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := c.Start(ctx); err != nil {
				return
			}
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
	close(start)
	wg.Wait()
	// Power cut: the server gets no chance to flush anything.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
	for _, c := range clients {
		go c.Stop() // their De-register goes nowhere
	}
	mu.Lock()
	got := len(registered)
	mu.Unlock()
	if got != n {
		t.Fatalf("%d of %d devices got 2.01 before the kill", got, n)
	}
	st, err := bolt.Open(db)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer st.Close()
	regs, err := st.Registrations()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range regs {
		have[r.Endpoint] = true
	}
	for ep := range registered {
		if !have[ep] {
			t.Errorf("%s was answered 2.01 but its registration is not in the file after the crash", ep)
		}
	}
}

// runCrashChild runs a server on db until it is killed.
func runCrashChild(db string) {
	st, err := bolt.Open(db)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(server.Config{Store: st, Config: dm.Config{CoAPAddr: "127.0.0.1:0", Logger: log}})
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	fmt.Println("coap " + srv.CoAPAddr().String())
	select {}
}
