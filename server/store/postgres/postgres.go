// Package postgres is the store backend for several server nodes sharing one
// PostgreSQL database: every interface of store.Store over pgx (pgxpool).
// Each call is one transaction (PutBlob: several, the blob made visible by
// the last), committed before it returns (PostgreSQL's
// commit is durable with its default synchronous_commit), so a call that
// returned nil survives a crash of the node or of the database, and a call
// cut short leaves nothing.
//
// Tables (typed columns for what is looked up, joined or kept unique; the
// whole store record as JSONB in record):
//
//	registrations          id, endpoint -> Registration
//	credentials            endpoint, identity (UNIQUE, NULL without PSK) -> Credential
//	observations           token, reg_id, endpoint -> Observation
//	settings               name -> value (raw bytes)
//	bootstrap_configs      endpoint -> BootstrapConfig
//	bootstrap_credentials  endpoint, identity (UNIQUE apart from credentials') -> Credential
//	fw_blobs               sha256 -> blob_id, size: a finished blob (written last)
//	fw_chunks              (blob_id, idx) -> bytes: 64 KiB pieces of a blob
//	fw_uploads             blob_id, started: uploads not finished (a crash's leftovers)
//	fw_images              id, device_type, version, sha256, seq_no -> Image
//	fw_packages            id, kind, from_image, to_image, sha256 -> Package
//	fw_profiles            device_type -> DeviceProfile
//	campaigns              id, state -> Campaign
//	campaign_devices       (campaign_id, endpoint), state -> CampaignDevice
//	device_history         seq, endpoint -> HistoryEntry (seq orders, oldest trimmed)
//	audit                  seq -> AuditEntry (seq orders, oldest trimmed)
//	schema_version         version, applied: the migrations applied (migrate.go)
//
// Concurrency: the rules of package store that need more than one row
// (a PSK identity unique per endpoint, SeqNo one above the highest of a
// device type, first-writer-wins packages, a blob not removed while an
// image is added for it) are kept by unique constraints and row or
// advisory locks, so they hold across nodes, not only across goroutines.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fotastack/fota/server/store"
)

// callTimeout bounds each call: the store interfaces take no context, and a
// database that stopped answering must fail a call, not hang a device's
// request forever. PutBlob applies it per transaction, not to the upload.
const callTimeout = 30 * time.Second

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool *pgxpool.Pool
	// where names the database for error messages: host, port, database
	// and user, never the password.
	where string
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string), applies the migrations this binary has not yet
// applied, and returns the store. A database whose schema is newer than
// this binary knows is refused.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the DSN, password included: say
		// only what is wrong in general.
		return nil, errors.New("open postgres store: the DSN does not parse (want postgres://USER@HOST:PORT/DATABASE?sslmode=...; put a password in PGPASSWORD or ~/.pgpass, not on a command line)")
	}
	where := fmt.Sprintf("postgres %s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	s := &Store{pool: pool, where: where}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: %w (is the server running and may this user connect?)", where, err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	if err := s.dropUnfinishedBlobs(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: remove uploads a crash cut short: %w", where, err)
	}
	return s, nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// tx runs fn in one transaction and commits it.
func (s *Store) tx(fn func(ctx context.Context, tx pgx.Tx) error) error {
	c, cancel := ctx()
	defer cancel()
	return pgx.BeginFunc(c, s.pool, func(tx pgx.Tx) error { return fn(c, tx) })
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// getJSON reads the record column of the one row a query returns into v;
// no row is ErrNotFound, named by what.
func getJSON(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, v any, what string, sql string, args ...any) error {
	var data []byte
	if err := q.QueryRow(ctx, sql, args...).Scan(&data); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", store.ErrNotFound, what)
		}
		return fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// list decodes the record column of every row a query returns.
func list[T any](s *Store, what string, sql string, args ...any) ([]T, error) {
	c, cancel := ctx()
	defer cancel()
	rows, err := s.pool.Query(c, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) {
		var data []byte
		var x T
		if err := row.Scan(&data); err != nil {
			return x, err
		}
		return x, json.Unmarshal(data, &x)
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}
