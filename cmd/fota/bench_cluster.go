package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchCluster starts, for each node count, that many `fota server` nodes
// (child processes of this binary) on a fresh schema of the database, one
// `fota fleet` process per node pointed at it (no balancer: the
// balancer's cost is not ours to measure), and measures: registrations
// per second until all registered; the database's work per registration
// (transactions, rows written, WAL bytes, from pg_stat_database and the WAL
// position) and per registration Update (WAL bytes, from the registrations
// table's update count); and the time of a delta campaign over the fleet.
func benchCluster(args []string) error {
	fs := newFlags("bench cluster", "--store DSN", "Registrations per second, campaign time and the database's share of the cost with one, two and three nodes on this machine. Each run uses a fresh schema of the database, dropped afterwards.",
		"fota bench cluster --store postgres://fota@127.0.0.1:5432/postgres --devices 600")
	dsn := fs.String("store", "", "PostgreSQL `DSN` (default $FOTA_STORE); the user must be allowed to create schemas")
	devices := fs.Int("devices", 600, "simulated devices (split over the nodes)")
	nodesFlag := fs.String("nodes", "1,2,3", "node counts to run, comma-separated")
	campaignToo := fs.Bool("campaign", true, "run a delta campaign over the fleet after the registrations")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *dsn == "" {
		*dsn = os.Getenv("FOTA_STORE")
	}
	if *dsn == "" {
		return &exitError{2, errors.New("--store postgres://... is required (or $FOTA_STORE)")}
	}
	var counts []int
	for _, f := range strings.Split(*nodesFlag, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 || k > 9 {
			return &exitError{2, fmt.Errorf("--nodes %q: counts from 1 to 9", *nodesFlag)}
		}
		counts = append(counts, k)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("bench cluster: %d devices, DTLS-PSK, lan; nodes, fleets and PostgreSQL on this machine\n", *devices)
	fmt.Printf("%5s %10s %9s %9s %9s %11s %11s %10s\n", "nodes", "reg/s", "tx/reg", "rows/reg", "WAL/reg", "WAL/update", "updates", "campaign")
	for _, k := range counts {
		r, err := benchClusterRun(self, *dsn, k, *devices, *campaignToo)
		if err != nil {
			return fmt.Errorf("%d nodes: %w", k, err)
		}
		camp := "-"
		if r.campaign > 0 {
			camp = fmt.Sprintf("%.1f s", r.campaign.Seconds())
		}
		fmt.Printf("%5d %10.0f %9.1f %9.1f %8.0fB %10.0fB %11d %10s\n", k, r.regPerSec, r.txPerReg, r.rowsPerReg, r.walPerReg, r.walPerUpdate, r.updates, camp)
	}
	fmt.Println("tx/reg: committed transactions per registration (all nodes, heartbeats included); rows/reg: rows inserted, updated or deleted; WAL: bytes of write-ahead log, what a replica and the disk receive")
	return nil
}

type benchClusterResult struct {
	regPerSec, txPerReg, rowsPerReg, walPerReg, walPerUpdate float64
	updates                                                  int64
	campaign                                                 time.Duration
}

type pgSnap struct {
	xact, rows, wal, regUpdates int64
}

func snapPG(ctx context.Context, db *pgx.Conn) (pgSnap, error) {
	var s pgSnap
	err := db.QueryRow(ctx, `SELECT xact_commit, tup_inserted + tup_updated + tup_deleted,
		pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
		coalesce((SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'registrations' AND schemaname = current_schema()), 0)
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&s.xact, &s.rows, &s.wal, &s.regUpdates)
	return s, err
}

func benchClusterRun(self, baseDSN string, k, devices int, withCampaign bool) (res benchClusterResult, err error) {
	ctx := context.Background()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	schema := "fota_bench_" + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, baseDSN)
	if err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return res, fmt.Errorf("create schema: %w", err)
	}
	defer func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }()
	u, err := url.Parse(baseDSN)
	if err != nil {
		return res, errors.New("--store: want a postgres:// URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	dsn := u.String()
	dir, err := os.MkdirTemp("", "fota-bench-cluster-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	token := hex.EncodeToString(b) + "-bench"
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
	}()
	type node struct{ coaps, http string }
	var nodes []node
	for i := 0; i < k; i++ {
		n := node{coaps: freeAddr("udp"), http: freeAddr("tcp")}
		cl := freeAddr("tcp")
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("n%d.log", i)))
		if err != nil {
			return res, err
		}
		cmd := exec.Command(self, "server", "--store", dsn, "--node-id", fmt.Sprintf("b%d", i), "--cluster-addr", cl,
			"--coap", "", "--coaps", n.coaps, "--http", n.http)
		cmd.Env = append(os.Environ(), "FOTA_API_TOKEN="+token)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return res, err
		}
		logf.Close()
		procs = append(procs, cmd)
		if err := waitReady("http://"+n.http, 30*time.Second); err != nil {
			b, _ := os.ReadFile(logf.Name())
			return res, fmt.Errorf("node %d did not start: %s", i, lastLine(string(b)))
		}
		nodes = append(nodes, n)
	}
	api := apiClient{base: "http://" + nodes[0].http, token: token, hc: &http.Client{Timeout: time.Minute}}
	fw := generateDemoFirmware(64<<10, 3)
	img1, err := demoUpload(api, fw.V1, demoV1)
	if err != nil {
		return res, err
	}
	img2, err := demoUpload(api, fw.V2, demoV2)
	if err != nil {
		return res, err
	}
	var key struct{ PublicKey string }
	if kb, err := api.do("GET", "/api/firmware/key", nil); err != nil || json.Unmarshal(kb, &key) != nil {
		return res, fmt.Errorf("firmware key: %v", err)
	}
	v1 := filepath.Join(dir, "v1.bin")
	if err := os.WriteFile(v1, fw.V1, 0o600); err != nil {
		return res, err
	}
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return res, err
	}
	defer db.Close(ctx)
	// Credentials first, so that the measured window holds registrations only.
	if err := provisionFleet(ctx, api.base, token, "bc-", 0, devices); err != nil {
		return res, err
	}
	before, err := snapPG(ctx, db)
	if err != nil {
		return res, fmt.Errorf("read database statistics: %w", err)
	}
	const lifetime = 20 * time.Second
	start := time.Now()
	per := (devices + k - 1) / k
	for i := 0; i < k; i++ {
		first, n := i*per, min(per, devices-i*per)
		if n <= 0 {
			break
		}
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("fleet%d.log", i)))
		if err != nil {
			return res, err
		}
		cmd := exec.Command(self, "fleet", "--devices", strconv.Itoa(n), "--first", strconv.Itoa(first),
			"--server", "coaps://"+nodes[i].coaps, "--psk-prefix", "bc-", "--rate", "0", "--lifetime", lifetime.String(),
			"--flash-image", v1, "--firmware-version", demoV1, "--device-type", demoDeviceType,
			"--trust", key.PublicKey, "--seq", strconv.FormatUint(uint64(img1.SeqNo), 10))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return res, err
		}
		logf.Close()
		procs = append(procs, cmd)
	}
	var regs int
	for {
		if err := db.QueryRow(ctx, "SELECT count(*) FROM registrations").Scan(&regs); err != nil {
			return res, err
		}
		if regs >= devices {
			break
		}
		if time.Since(start) > 3*time.Minute {
			return res, fmt.Errorf("%d of %d devices registered after 3 minutes", regs, devices)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	// Let the batched owner writes and history land before reading.
	time.Sleep(time.Second)
	after, err := snapPG(ctx, db)
	if err != nil {
		return res, err
	}
	res.regPerSec = float64(devices) / took.Seconds()
	res.txPerReg = float64(after.xact-before.xact) / float64(devices)
	res.rowsPerReg = float64(after.rows-before.rows) / float64(devices)
	res.walPerReg = float64(after.wal-before.wal) / float64(devices)
	// One lifetime later every device has sent one Update (at 90 % of it).
	time.Sleep(lifetime)
	upd, err := snapPG(ctx, db)
	if err != nil {
		return res, err
	}
	res.updates = upd.regUpdates - after.regUpdates
	if res.updates > 0 {
		res.walPerUpdate = float64(upd.wal-after.wal) / float64(res.updates)
	}
	if !withCampaign {
		return res, nil
	}
	eps := make([]string, devices)
	for i := range eps {
		eps[i] = fmt.Sprintf("ep-%d", i)
	}
	cb, err := api.do("POST", "/api/campaigns", map[string]any{"name": "bench-cluster", "image": img2.ID, "method": "pull",
		"concurrency": devices, "deviceTimeout": "3m", "retries": 3, "retryBackoff": "1s", "targets": map[string]any{"endpoints": eps}})
	if err != nil {
		return res, fmt.Errorf("create campaign: %w", err)
	}
	var camp struct{ ID string }
	_ = json.Unmarshal(cb, &camp)
	cstart := time.Now()
	for {
		var state string
		if err := db.QueryRow(ctx, "SELECT state FROM campaigns WHERE id = $1", camp.ID).Scan(&state); err != nil {
			return res, err
		}
		if state != "running" {
			var succ int
			_ = db.QueryRow(ctx, "SELECT count(*) FROM campaign_devices WHERE campaign_id = $1 AND state = 'succeeded'", camp.ID).Scan(&succ)
			if succ != devices {
				return res, fmt.Errorf("campaign %s with %d of %d devices updated", state, succ, devices)
			}
			res.campaign = time.Since(cstart)
			return res, nil
		}
		if time.Since(cstart) > 5*time.Minute {
			return res, errors.New("campaign not done after 5 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freeAddr is a free loopback address of the network ("udp" or "tcp"),
// free for both when asked for tcp (a cluster address takes both).
func freeAddr(network string) string {
	for range 50 {
		if network == "udp" {
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				continue
			}
			a := c.LocalAddr().String()
			c.Close()
			return a
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		a := l.Addr().String()
		l.Close()
		if c, err := net.ListenPacket("udp", a); err == nil {
			c.Close()
			return a
		}
	}
	return "127.0.0.1:0"
}

func waitReady(base string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("not ready")
}

// lastLine is the last line of s, trimmed (the error a child printed last).
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
