package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
)

// The coordination of several server nodes (server/cluster) lives here
// beside the records, so that pgx stays inside this package. Every time
// compared is the database's (now()), never a node's clock: nodes whose
// clocks disagree still agree on who is alive.

// Node is one server node's lease row.
type Node struct {
	ID          string
	No          int    // the number its DTLS Connection IDs carry
	Addr        string // its cluster address (HOST:PORT)
	Incarnation string // which process holds the id
	Started     time.Time
	LeaseUntil  time.Time
	Live        bool // lease not lapsed, by the database's clock
}

// ErrNodeLive refuses a node id that a live node holds.
var ErrNodeLive = errors.New("node id is held by a live node")

// ErrLeaseLost says that this process no longer holds its node id: its
// lease lapsed and another process took the id.
var ErrLeaseLost = errors.New("node lease lost")

// AcquireNode takes the lease of node id for this process: refused with
// ErrNodeLive while another process holds it, else (new id, or a lease
// that lapsed: the node died or stopped) it is ours for ttl. A new id gets
// the lowest free node number.
func (s *Store) AcquireNode(id, addr string, ttl time.Duration) (Node, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	inc := hex.EncodeToString(b)
	var n Node
	err := s.tx(func(ctx context.Context, tx pgx.Tx) error {
		// One node joins at a time: the number picked below must not be
		// picked by another joining node at once.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('fota cluster join'))"); err != nil {
			return err
		}
		var until time.Time
		var live bool
		var prevAddr string
		err := tx.QueryRow(ctx, `SELECT node_no, cluster_addr, lease_until, lease_until > now() FROM cluster_nodes WHERE node_id = $1 FOR UPDATE`, id).
			Scan(&n.No, &prevAddr, &until, &live)
		switch {
		case err == nil && live:
			return fmt.Errorf("%w: node %q (cluster address %s) holds its lease until %s: another process runs with this id; stop it or pick another --node-id",
				ErrNodeLive, id, prevAddr, until.UTC().Format(time.RFC3339))
		case err == nil:
		case errors.Is(err, pgx.ErrNoRows):
			err = tx.QueryRow(ctx, `SELECT coalesce(min(g), 0) FROM generate_series(1, 65535) g
				WHERE NOT EXISTS (SELECT 1 FROM cluster_nodes WHERE node_no = g)`).Scan(&n.No)
			if err != nil {
				return err
			}
			if n.No == 0 {
				return errors.New("65535 node ids are registered: remove dead ones (fota store has them in cluster_nodes)")
			}
		default:
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO cluster_nodes (node_id, node_no, cluster_addr, incarnation, started, lease_until)
			VALUES ($1, $2, $3, $4, now(), now() + $5::interval)
			ON CONFLICT (node_id) DO UPDATE SET cluster_addr = excluded.cluster_addr, incarnation = excluded.incarnation,
				started = excluded.started, lease_until = excluded.lease_until
			RETURNING started, lease_until`, id, n.No, addr, inc, ttl.String()).Scan(&n.Started, &n.LeaseUntil)
	})
	if err != nil {
		if errors.Is(err, ErrNodeLive) {
			return Node{}, err
		}
		return Node{}, fmt.Errorf("take the lease of node %q in %s: %w", id, s.where, err)
	}
	n.ID, n.Addr, n.Incarnation, n.Live = id, addr, inc, true
	return n, nil
}

// RenewNode extends this process's lease by ttl; ErrLeaseLost when another
// process holds the id now.
func (s *Store) RenewNode(id, incarnation string, ttl time.Duration) error {
	c, cancel := context.WithTimeout(context.Background(), ttl)
	defer cancel()
	tag, err := s.pool.Exec(c, `UPDATE cluster_nodes SET lease_until = now() + $3::interval
		WHERE node_id = $1 AND incarnation = $2`, id, incarnation, ttl.String())
	if err != nil {
		return fmt.Errorf("renew the lease of node %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: node %q is held by another process now", ErrLeaseLost, id)
	}
	return nil
}

// ReleaseNode ends this process's lease at once (a clean stop): the others
// take its devices and campaign work over without waiting for the lapse.
func (s *Store) ReleaseNode(id, incarnation string) error {
	c, cancel := ctx()
	defer cancel()
	_, err := s.pool.Exec(c, `UPDATE cluster_nodes SET lease_until = now() WHERE node_id = $1 AND incarnation = $2`, id, incarnation)
	if err != nil {
		return fmt.Errorf("release node %q: %w", id, err)
	}
	_, err = s.pool.Exec(c, `UPDATE campaign_devices SET claim_node = NULL, claim_until = NULL WHERE claim_node = $1`, id)
	return err
}

// Nodes returns every node row, live or not.
func (s *Store) Nodes() ([]Node, error) {
	c, cancel := ctx()
	defer cancel()
	rows, err := s.pool.Query(c, `SELECT node_id, node_no, cluster_addr, incarnation, started, lease_until, lease_until > now() FROM cluster_nodes ORDER BY node_no`)
	if err != nil {
		return nil, fmt.Errorf("read cluster nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) {
		var n Node
		err := r.Scan(&n.ID, &n.No, &n.Addr, &n.Incarnation, &n.Started, &n.LeaseUntil, &n.Live)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("read cluster nodes: %w", err)
	}
	return out, nil
}

// SetOwners records node as the holder of the endpoints' sessions, in one
// statement (a burst of registrations costs one round trip).
func (s *Store) SetOwners(node string, endpoints []string) error {
	if len(endpoints) == 0 {
		return nil
	}
	c, cancel := ctx()
	defer cancel()
	_, err := s.pool.Exec(c, `INSERT INTO device_owners (endpoint, node_id, since)
		SELECT DISTINCT e, $1, now() FROM unnest($2::text[]) e
		ON CONFLICT (endpoint) DO UPDATE SET node_id = excluded.node_id, since = excluded.since
		WHERE device_owners.node_id <> excluded.node_id`, node, endpoints)
	if err != nil {
		return fmt.Errorf("record %d device owners: %w", len(endpoints), err)
	}
	return nil
}

// DropOwner forgets that node holds endpoint (de-registered); a row of
// another node is left alone.
func (s *Store) DropOwner(node, endpoint string) error {
	c, cancel := ctx()
	defer cancel()
	_, err := s.pool.Exec(c, `DELETE FROM device_owners WHERE endpoint = $1 AND node_id = $2`, endpoint, node)
	return err
}

// NodeOf returns the node that holds endpoint's session, or ErrNotFound.
func (s *Store) NodeOf(endpoint string) (Node, error) {
	c, cancel := ctx()
	defer cancel()
	var n Node
	err := s.pool.QueryRow(c, `SELECT n.node_id, n.node_no, n.cluster_addr, n.incarnation, n.started, n.lease_until, n.lease_until > now()
		FROM device_owners o JOIN cluster_nodes n ON n.node_id = o.node_id WHERE o.endpoint = $1`, endpoint).
		Scan(&n.ID, &n.No, &n.Addr, &n.Incarnation, &n.Started, &n.LeaseUntil, &n.Live)
	if errors.Is(err, pgx.ErrNoRows) {
		return Node{}, fmt.Errorf("%w: owner of %q", store.ErrNotFound, endpoint)
	}
	if err != nil {
		return Node{}, fmt.Errorf("read the owner of %q: %w", endpoint, err)
	}
	return n, nil
}

// ClaimCampaignDevices claims, for node, the devices of campaign among
// endpoints that node holds the session of and that no live claim covers:
// SELECT ... FOR UPDATE SKIP LOCKED, so nodes claiming at once never wait
// for each other nor take the same device. A claim lasts ttl and is renewed
// by RenewClaims while node drives the device; one that lapsed (its node
// died) is taken over. It returns the endpoints claimed.
func (s *Store) ClaimCampaignDevices(node, campaign string, endpoints []string, ttl time.Duration) ([]string, error) {
	if len(endpoints) == 0 {
		return nil, nil
	}
	var out []string
	err := s.tx(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH free AS (
				SELECT d.campaign_id, d.endpoint FROM campaign_devices d
				JOIN device_owners o ON o.endpoint = d.endpoint AND o.node_id = $1
				WHERE d.campaign_id = $2 AND d.endpoint = ANY($3::text[])
				AND (d.claim_node IS NULL OR d.claim_node = $1 OR d.claim_until < now())
				FOR UPDATE OF d SKIP LOCKED)
			UPDATE campaign_devices d SET claim_node = $1, claim_until = now() + $4::interval
			FROM free WHERE d.campaign_id = free.campaign_id AND d.endpoint = free.endpoint
			RETURNING d.endpoint`, node, campaign, endpoints, ttl.String())
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim devices of campaign %s: %w", campaign, err)
	}
	return out, nil
}

// RenewClaims extends every campaign claim node holds by ttl.
func (s *Store) RenewClaims(node string, ttl time.Duration) error {
	c, cancel := ctx()
	defer cancel()
	_, err := s.pool.Exec(c, `UPDATE campaign_devices SET claim_until = now() + $2::interval WHERE claim_node = $1`, node, ttl.String())
	if err != nil {
		return fmt.Errorf("renew campaign claims of node %q: %w", node, err)
	}
	return nil
}

// ReleaseClaim ends node's claim on a campaign device (its driver stopped).
func (s *Store) ReleaseClaim(node, campaign, endpoint string) error {
	c, cancel := ctx()
	defer cancel()
	_, err := s.pool.Exec(c, `UPDATE campaign_devices SET claim_node = NULL, claim_until = NULL
		WHERE campaign_id = $1 AND endpoint = $2 AND claim_node = $3`, campaign, endpoint, node)
	return err
}

// Notify sends payload on a PostgreSQL NOTIFY channel (at most 8000 bytes:
// PostgreSQL's limit).
func (s *Store) Notify(channel, payload string) error {
	c, cancel := ctx()
	defer cancel()
	_, err := s.pool.Exec(c, "SELECT pg_notify($1, $2)", channel, payload)
	return err
}

// Listen calls fn with the payload of every NOTIFY on channel until ctx
// ends, on a connection of its own (LISTEN holds it); a lost connection is
// reconnected after a second, and onErr (if set) is told why.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string), onErr func(error)) {
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			return
		}
		if onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, channel string, fn func(string)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// LISTEN leaves the session subscribed: never hand it back to the pool.
	defer func() { _ = conn.Hijack().Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
