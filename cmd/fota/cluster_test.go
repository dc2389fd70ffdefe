package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fotastack/fota/server/store/postgres/pgtest"
	"github.com/jackc/pgx/v5"
)

// The cluster tests run the real binary: three `fota server` nodes (separate
// processes, so that kill -9 is real) on one PostgreSQL database behind
// Debian's nginx stream module balancing UDP by source address, and a
// `fota fleet` process of simulated devices.

// requireNginx returns the nginx binary and its stream module, or skips
// naming what to install (fails under FOTA_INTEROP_REQUIRED=1, as CI runs).
func requireNginx(t *testing.T) (bin, module string) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/nginx"); e == nil {
			bin, err = "/usr/sbin/nginx", nil
		}
	}
	module = "/usr/lib/nginx/modules/ngx_stream_module.so"
	if _, e := os.Stat(module); err != nil || e != nil {
		msg := "nginx with its stream module is not installed: apt-get install nginx libnginx-mod-stream (.ci/run installs them)"
		if os.Getenv("FOTA_INTEROP_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin, module
}

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

// freeClusterPort is a port free for both TCP and UDP (the cluster
// address takes both), and not one of taken.
func freeClusterPort(t *testing.T, taken ...int) int {
	t.Helper()
	for range 50 {
		p := freeTCPPort(t)
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		c.Close()
		ok := true
		for _, x := range taken {
			ok = ok && x != p
		}
		if ok {
			return p
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// buildFota builds this binary without -race: three nodes and a thousand
// devices under the race detector would not fit the CI's time.
func buildFota(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "fota")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// clusterNode is one `fota server` process of the test cluster.
type clusterNode struct {
	id                 string
	coaps, http, clust int
	cmd                *exec.Cmd
	log                string
}

func (n *clusterNode) url() string { return fmt.Sprintf("http://127.0.0.1:%d", n.http) }

func startNode(t *testing.T, bin, dir, dsn, token string, n *clusterNode) {
	t.Helper()
	n.log = filepath.Join(dir, n.id+".log")
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n.cmd = exec.Command(bin, "server", "--store", dsn, "--node-id", n.id,
		"--cluster-addr", fmt.Sprintf("127.0.0.1:%d", n.clust), "--cluster-lease", "3s",
		"--coap", "", "--coaps", fmt.Sprintf("127.0.0.1:%d", n.coaps), "--http", fmt.Sprintf("127.0.0.1:%d", n.http),
		"--public-host", "127.0.0.1")
	n.cmd.Env = append(os.Environ(), "FOTA_API_TOKEN="+token)
	n.cmd.Stdout, n.cmd.Stderr = f, f
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := n.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(n.url() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(n.log)
			t.Fatalf("node %s did not start:\n%s", n.id, tail(string(b), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// startBalancer runs nginx's stream module in front of the nodes' DTLS
// ports: UDP, hashed by the source address and port, so that a NAT
// rebinding (a new source port) lands on any node, and records of a
// session held elsewhere must be routed by their Connection ID. A node
// that refuses datagrams (ICMP port unreachable: killed) is out for 30 s.
// Every NAT rebinding is a new flow to nginx, kept for proxy_timeout:
// flows = devices x proxy_timeout / rebinding interval must fit
// worker_connections (1,000 x 60 s / 8 s = 7,500 here; with 10 minutes,
// 8,192 connections ran out mid-test and every device was cut off).
func startBalancer(t *testing.T, bin, module, dir string, port int, nodes []*clusterNode) {
	t.Helper()
	var ups strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&ups, "    server 127.0.0.1:%d max_fails=1 fail_timeout=30s;\n", n.coaps)
	}
	conf := fmt.Sprintf(`load_module %s;
daemon off;
worker_processes 1;
worker_rlimit_nofile 18000;
pid %s/nginx.pid;
error_log %s/nginx-error.log warn;
events { worker_connections 16000; }
stream {
  upstream fota_dtls {
    hash $remote_addr$remote_port;
%s  }
  server {
    listen 127.0.0.1:%d udp;
    proxy_pass fota_dtls;
    proxy_timeout 60s;
  }
}
`, module, dir, dir, ups.String(), port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "nginx-error.log"))
	out, _ := os.Create(filepath.Join(dir, "nginx.out"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
	})
	time.Sleep(300 * time.Millisecond)
	if cmd.ProcessState != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "nginx-error.log"))
		t.Fatalf("nginx exited: %s", b)
	}
}

// TestClusterKillNodeMidCampaign: three nodes, the balancer, 1,000 devices
// over DTLS-PSK whose NATs rebind (the rebound records reach whichever node
// the balancer picks and are relayed to the session's owner by the node
// number in their Connection ID), a delta campaign; one node is killed
// with SIGKILL while the campaign runs. Its devices come back through the
// balancer to the other two, the campaign finishes with every device on
// the new version, each installed exactly once (counted by the devices),
// every device still registered; the killed node restarts under its id
// and takes devices again.
func TestClusterKillNodeMidCampaign(t *testing.T) {
	dsn := pgtest.DSN(t)
	nginx, module := requireNginx(t)
	if testing.Short() {
		t.Skip("-short: the cluster run takes minutes")
	}
	const devices = 1000
	dir := t.TempDir()
	bin := buildFota(t, dir)
	token := "cluster-test-token"
	nodes := []*clusterNode{{id: "n1"}, {id: "n2"}, {id: "n3"}}
	var taken []int
	for _, n := range nodes {
		n.coaps, n.http = freeUDPPort(t), freeTCPPort(t)
		taken = append(taken, n.coaps, n.http)
		n.clust = freeClusterPort(t, taken...)
		taken = append(taken, n.clust)
	}
	for _, n := range nodes {
		startNode(t, bin, dir, dsn, token, n)
	}
	lb := freeUDPPort(t)
	startBalancer(t, nginx, module, dir, lb, nodes)
	api := apiClient{base: nodes[0].url(), token: token, hc: &http.Client{Timeout: time.Minute}}

	// Firmware v1 and v2 of one device type; a delta from v1 to v2.
	fw := generateDemoFirmware(64<<10, 3)
	img1, err := demoUpload(api, fw.V1, demoV1)
	if err != nil {
		t.Fatal(err)
	}
	img2, err := demoUpload(api, fw.V2, demoV2)
	if err != nil {
		t.Fatal(err)
	}
	var key struct{ PublicKey string }
	if b, err := api.do("GET", "/api/firmware/key", nil); err != nil || json.Unmarshal(b, &key) != nil {
		t.Fatalf("firmware key: %v", err)
	}
	v1 := filepath.Join(dir, "v1.bin")
	if err := os.WriteFile(v1, fw.V1, 0o600); err != nil {
		t.Fatal(err)
	}

	// The fleet: 10 devices per source address (hash $remote_addr spreads
	// the addresses), NAT bindings that expire after 8 s idle.
	installs := filepath.Join(dir, "installs.json")
	fleetLog, _ := os.Create(filepath.Join(dir, "fleet.log"))
	defer fleetLog.Close()
	fleetCmd := exec.Command(bin, "fleet", "--devices", strconv.Itoa(devices), "--server", fmt.Sprintf("coaps://127.0.0.1:%d", lb),
		"--psk-prefix", "kc-", "--provision", "--url", nodes[1].url(), "--rate", "150", "--lifetime", "30s",
		"--per-address", "10", "--nat-timeout", "8s",
		"--flash-image", v1, "--firmware-version", demoV1, "--device-type", demoDeviceType,
		"--trust", key.PublicKey, "--seq", strconv.FormatUint(uint64(img1.SeqNo), 10), "--installs", installs)
	fleetCmd.Env = append(os.Environ(), "FOTA_API_TOKEN="+token)
	fleetCmd.Stdout, fleetCmd.Stderr = fleetLog, fleetLog
	if err := fleetCmd.Start(); err != nil {
		t.Fatal(err)
	}
	fleetDone := false
	stopFleet := func() {
		if fleetDone {
			return
		}
		fleetDone = true
		_ = fleetCmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = fleetCmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = fleetCmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stopFleet)

	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	count := func(q string, args ...any) int {
		var n int
		if err := db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	campaignID := ""
	states := func() string {
		if campaignID == "" {
			return ""
		}
		rows, err := db.Query(ctx, `SELECT state, coalesce(claim_node, '-'), count(*), min(coalesce(record->>'error', '')) FROM campaign_devices
			WHERE campaign_id = $1 GROUP BY 1, 2 ORDER BY 1, 2`, campaignID)
		if err != nil {
			return err.Error()
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var st, node, e string
			var c int
			_ = rows.Scan(&st, &node, &c, &e)
			out = append(out, fmt.Sprintf("%s@%s %d %s", st, node, c, e))
		}
		rows.Close()
		rows, err = db.Query(ctx, `SELECT o.node_id, n.lease_until > now(), count(*) FROM device_owners o
			JOIN cluster_nodes n USING (node_id) GROUP BY 1, 2 ORDER BY 1`)
		if err == nil {
			for rows.Next() {
				var id string
				var live bool
				var c int
				_ = rows.Scan(&id, &live, &c)
				out = append(out, fmt.Sprintf("owned by %s (live %v): %d", id, live, c))
			}
			rows.Close()
		}
		ng, _ := os.ReadFile(filepath.Join(dir, "nginx-error.log"))
		return strings.Join(out, "; ") + "\nnginx: " + tail(string(ng), 800)
	}
	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(filepath.Join(dir, "fleet.log"))
				t.Fatalf("%s: not within %s\ncampaign devices: %s\nfleet: %s", what, limit, states(), tail(string(b), 1500))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitFor("1,000 devices registered and owned", 3*time.Minute, func() bool {
		return count("SELECT count(*) FROM device_owners o JOIN cluster_nodes n USING (node_id) WHERE n.lease_until > now()") >= devices
	})
	perNode := map[string]int{}
	rows, _ := db.Query(ctx, "SELECT node_id, count(*) FROM device_owners GROUP BY node_id")
	for rows.Next() {
		var id string
		var c int
		_ = rows.Scan(&id, &c)
		perNode[id] = c
	}
	rows.Close()
	t.Logf("devices per node: %v", perNode)
	victim := nodes[1]
	if perNode[victim.id] == 0 {
		t.Fatalf("the balancer gave node %s no device: %v", victim.id, perNode)
	}

	// A delta campaign over all of them, created at node 1.
	eps := make([]string, devices)
	for i := range eps {
		eps[i] = fmt.Sprintf("ep-%d", i)
	}
	body := map[string]any{"name": "cluster", "image": img2.ID, "method": "pull", "concurrency": 200,
		"retries": 5, "retryBackoff": "1s", "deviceTimeout": "3m", "errorThreshold": 1,
		"targets": map[string]any{"endpoints": eps}}
	b, err := api.do("POST", "/api/campaigns", body)
	if err != nil {
		t.Fatalf("create campaign: %v", err)
	}
	var camp struct{ ID string }
	_ = json.Unmarshal(b, &camp)
	campaignID = camp.ID
	start := time.Now()

	// Mid-campaign: kill -9 the victim.
	waitFor("a tenth of the campaign done", 3*time.Minute, func() bool {
		return count("SELECT count(*) FROM campaign_devices WHERE campaign_id = $1 AND state = 'succeeded'", camp.ID) >= devices/10
	})
	held := count("SELECT count(*) FROM device_owners WHERE node_id = $1", victim.id)
	_ = victim.cmd.Process.Kill()
	_ = victim.cmd.Wait()
	t.Logf("killed node %s holding %d devices after %.0f s, %d succeeded", victim.id, held,
		time.Since(start).Seconds(), count("SELECT count(*) FROM campaign_devices WHERE campaign_id = $1 AND state = 'succeeded'", camp.ID))

	waitFor("campaign complete", 7*time.Minute, func() bool {
		return count("SELECT count(*) FROM campaigns WHERE id = $1 AND state <> 'running'", camp.ID) == 1
	})
	t.Logf("campaign ended after %.0f s", time.Since(start).Seconds())
	var state string
	_ = db.QueryRow(ctx, "SELECT state FROM campaigns WHERE id = $1", camp.ID).Scan(&state)
	succ := count("SELECT count(*) FROM campaign_devices WHERE campaign_id = $1 AND state = 'succeeded'", camp.ID)
	if state != "completed" || succ != devices {
		rows, _ := db.Query(ctx, "SELECT endpoint, state, record->>'error' FROM campaign_devices WHERE campaign_id = $1 AND state <> 'succeeded' LIMIT 5", camp.ID)
		var bad []string
		for rows.Next() {
			var ep, st string
			var e *string
			_ = rows.Scan(&ep, &st, &e)
			if e != nil {
				st += ": " + *e
			}
			bad = append(bad, ep+" "+st)
		}
		rows.Close()
		t.Fatalf("campaign %s with %d of %d succeeded; e.g. %v", state, succ, devices, bad)
	}
	// The victim's devices are back, held by the live nodes.
	waitFor("every device held by a live node", time.Minute, func() bool {
		return count("SELECT count(*) FROM device_owners o JOIN cluster_nodes n USING (node_id) WHERE n.lease_until > now()") >= devices
	})
	// Every device registered, read through node 1 (forwarded to its holder).
	missing := 0
	for i := 0; i < devices; i += 37 {
		if _, err := api.do("GET", "/api/clients/"+eps[i], nil); err != nil {
			missing++
			t.Errorf("%s not registered: %v", eps[i], err)
		}
	}
	if missing > 0 {
		t.Fatalf("%d sampled devices not registered", missing)
	}

	// NAT rebindings reached other nodes than the sessions' owners, which
	// relayed their records (and sent the answers back out).
	var relayed, returned int64
	for _, n := range nodes {
		if n == victim {
			continue
		}
		var st struct {
			Relay struct{ Relayed, Returned int64 }
		}
		b, err := apiClient{base: n.url(), token: token, hc: api.hc}.do("GET", "/api/cluster", nil)
		if err != nil || json.Unmarshal(b, &st) != nil {
			t.Fatalf("GET /api/cluster at %s: %v", n.id, err)
		}
		relayed += st.Relay.Relayed
		returned += st.Relay.Returned
	}
	t.Logf("records relayed to their owners: %d; answers sent back out: %d", relayed, returned)
	if relayed == 0 || returned == 0 {
		t.Fatalf("no record was relayed between nodes (relayed %d, returned %d): rebindings did not cross nodes, or CID routing failed", relayed, returned)
	}

	// The killed node restarts under its id (its lease lapsed) and takes
	// devices again: new devices through the balancer land on it too.
	startNode(t, bin, dir, dsn, token, victim)
	time.Sleep(31 * time.Second) // nginx's fail_timeout: the node is tried again
	more := exec.Command(bin, "fleet", "--devices", "60", "--first", strconv.Itoa(devices), "--server", fmt.Sprintf("coaps://127.0.0.1:%d", lb),
		"--psk-prefix", "kc-", "--provision", "--url", nodes[0].url(), "--rate", "100", "--per-address", "2", "--exit", "--timeout", "60s")
	more.Env = append(os.Environ(), "FOTA_API_TOKEN="+token)
	if out, err := more.CombinedOutput(); err != nil {
		t.Fatalf("second fleet: %v\n%s", err, tail(string(out), 1000))
	}
	// --exit de-registers them; the history of registrations stays: count
	// the victim's second life by its registrations in the node's log.
	logb, _ := os.ReadFile(victim.log)
	second := strings.LastIndex(string(logb), "cluster node joined")
	if second < 0 || !strings.Contains(string(logb[second:]), "registered") {
		t.Fatalf("the restarted node %s took no device", victim.id)
	}

	// Each device installed the update exactly once.
	stopFleet()
	var counts map[string]int
	ib, err := os.ReadFile(installs)
	if err != nil || json.Unmarshal(ib, &counts) != nil {
		t.Fatalf("read the fleet's install counts: %v", err)
	}
	once, twice := 0, 0
	for _, c := range counts {
		switch {
		case c == 1:
			once++
		case c > 1:
			twice++
		}
	}
	if once != devices || twice != 0 {
		t.Fatalf("%d devices installed the update once, %d more than once, of %d", once, twice, devices)
	}
}
