package cluster_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fotastack/fota/client"
	"github.com/fotastack/fota/server"
	"github.com/fotastack/fota/server/cluster"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/store"
	"github.com/fotastack/fota/server/store/postgres"
	"github.com/fotastack/fota/server/store/postgres/pgtest"
)

func openStore(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		l.Close()
		if c, err := net.ListenPacket("udp", a); err == nil {
			c.Close()
			return a
		}
	}
	t.Fatal("no free port")
	return ""
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A node id held by a live node is refused to a second process, with the
// holder named; once the first leaves (its lease released) the id is free.
func TestClusterPostgresSecondNodeWithLiveIDRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	st := openStore(t, dsn)
	a, err := cluster.Join(cluster.Config{Store: st, NodeID: "a", Addr: freeAddr(t), Lease: 3 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	addr2 := freeAddr(t)
	_, err = cluster.Join(cluster.Config{Store: st, NodeID: "a", Addr: addr2, Lease: 3 * time.Second, Logger: quiet})
	if !errors.Is(err, postgres.ErrNodeLive) || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("second node a: %v, want refused naming the live node", err)
	}
	b, err := cluster.Join(cluster.Config{Store: st, NodeID: "b", Addr: addr2, Lease: 3 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.No() == b.No() {
		t.Fatalf("nodes a and b share number %d", a.No())
	}
	a.Close()
	again, err := cluster.Join(cluster.Config{Store: st, NodeID: "a", Addr: freeAddr(t), Lease: 3 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatalf("node a after the first left: %v", err)
	}
	if again.No() != a.No() {
		t.Fatalf("node a came back as number %d, was %d", again.No(), a.No())
	}
	again.Close()
}

func startNode(t *testing.T, dsn, id string) *server.Server {
	t.Helper()
	st := openStore(t, dsn)
	srv, err := server.Start(server.Config{Store: st, HTTPAddr: "127.0.0.1:0", APIToken: "tok",
		Config:  dm.Config{CoAPSAddr: "127.0.0.1:0", Logger: quiet},
		Cluster: cluster.Config{Store: st, NodeID: id, Addr: freeAddr(t), Lease: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Two nodes on one database: credentials stored through node b, the
// device registers at node a, and node b's API answers a Read of /3/0 by
// forwarding it to a; node b's event stream carries a's registration
// (LISTEN/NOTIFY); the internal listener refuses a request without the
// cluster's MAC.
func TestClusterPostgresForwardsToOwnerAndFansOutEvents(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := startNode(t, dsn, "a")
	b := startNode(t, dsn, "b")
	evs, cancel := b.Cluster.Stream().Subscribe(64)
	defer cancel()
	key := []byte("cluster-key-0001")
	if err := b.PutCredential(store.Credential{Endpoint: "cl-dev", Mode: "psk", Identity: "cl-dev-id", Key: key}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{
		Endpoint: "cl-dev", ServerURI: "coaps://" + a.CoAPSAddr().String(), PSKIdentity: "cl-dev-id", PSKKey: key,
		Device:   client.DeviceInfo{Manufacturer: "fotastack", FirmwareVersion: "1.0", DeviceType: "sim"},
		StateDir: filepath.Join(t.TempDir(), "state"), Logger: quiet, RequestTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	deadline := time.After(15 * time.Second)
	for got := false; !got; {
		select {
		case e := <-evs:
			got = e.Type == events.Registration && e.Endpoint == "cl-dev"
		case <-deadline:
			t.Fatal("node b's event stream did not carry the registration at node a")
		}
	}
	if b.Device("cl-dev") != nil {
		t.Fatal("node b holds the device itself: nothing would be forwarded")
	}
	base := "http://" + b.HTTPAddr().String()
	var code int
	var body string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if code, body = get(t, base+"/api/clients/cl-dev/3/0"); code == 200 {
			break
		}
	}
	if code != 200 || !strings.Contains(body, "fotastack") {
		t.Fatalf("read /3/0 through node b: %d %s", code, body)
	}
	// The internal listener wants the cluster's MAC, not only a token.
	nodes, err := b.Cluster.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == "a" {
			if code, _ := get(t, "http://"+n.Addr+"/api/clients/cl-dev"); code != http.StatusUnauthorized {
				t.Fatalf("unauthenticated request to a's cluster address: %d, want 401", code)
			}
		}
	}
}
