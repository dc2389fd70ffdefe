// Package pgtest gives tests a PostgreSQL of their own: a fresh schema of
// the server FOTA_TEST_POSTGRES names, dropped when the test ends. Without
// it a test skips naming what to install, and fails under
// FOTA_INTEROP_REQUIRED=1 (as CI runs), so a missing database is never a
// silent pass.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Base returns FOTA_TEST_POSTGRES, or skips (fails in CI) without it.
func Base(t testing.TB) string {
	t.Helper()
	base := os.Getenv("FOTA_TEST_POSTGRES")
	if base == "" {
		msg := "FOTA_TEST_POSTGRES is not set: install PostgreSQL (apt-get install postgresql) and set it to a DSN such as postgres://fota@127.0.0.1:5432/postgres?sslmode=disable; .ci/run starts a throw-away server and sets it"
		if os.Getenv("FOTA_INTEROP_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return base
}

// SchemaDSN returns a DSN of a fresh schema (its search_path) of base,
// dropped at the end of the test.
func SchemaDSN(t testing.TB, base string) string {
	t.Helper()
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	schema := "fota_test_" + hex.EncodeToString(id)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to FOTA_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithParam(t, base, "search_path", schema)
}

// DSN is SchemaDSN of Base: what most tests want.
func DSN(t testing.TB) string {
	t.Helper()
	return SchemaDSN(t, Base(t))
}

// WithParam adds a run-time parameter to a postgres:// DSN.
func WithParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("FOTA_TEST_POSTGRES must be a postgres:// URL")
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
