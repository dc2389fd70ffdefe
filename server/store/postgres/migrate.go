package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The schema is a list of numbered SQL files (migrations/0001_init.sql,
// 0002_...), each applied once, in order, in its own transaction, and
// recorded in schema_version. Not a migration library: the whole need is
// this one file (embed, a version table, an advisory lock); a library
// would bring its own table, CLI and dependencies to every node, and the
// rule that matters here (refuse a schema newer than the binary) is ours
// to state in our words.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: the name must start with its number, as 0002_what.sql", base)
		}
		data, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{v, base, string(data)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: numbers must run 1, 2, 3 ... without gaps", m.name)
		}
	}
	return out, nil
}

// SchemaVersion is the newest schema version this binary knows.
func SchemaVersion() int {
	ms, _ := migrations()
	return len(ms)
}

// migrate applies the migrations not yet applied. Two nodes starting at
// once take turns on a session advisory lock (keyed by the schema, so that
// databases or schemas side by side do not wait on each other): the second
// finds the work done.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	const lockKey = "hashtext('fota schema migration ' || coalesce(current_schema(), ''))"
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock("+lockKey+")"); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		// A failed unlock ends with the session: the connection is released
		// to the pool, which keeps it; close it so the lock cannot linger.
		if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_unlock("+lockKey+")"); err != nil {
			_ = conn.Conn().Close(context.Background())
		}
	}()
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version integer PRIMARY KEY,
		name    text NOT NULL,
		applied timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return fmt.Errorf("migrate: create schema_version: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&have); err != nil {
		return fmt.Errorf("migrate: read schema_version: %w", err)
	}
	if have > len(ms) {
		return fmt.Errorf("the database's schema is version %d, newer than this binary knows (version %d): a newer fota has migrated it; run that version (or newer) of fota, not this one", have, len(ms))
	}
	for _, m := range ms[have:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: apply %s: %w (nothing of it was applied)", m.name, err)
		}
	}
	return nil
}
