package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
)

// History and audit entries are ordered by a bigserial seq, not by their
// times (two entries may share a second); trimming deletes every entry at
// or below the seq of the keep+1-th newest.

// AddHistory implements store.HistoryStore.
func (s *Store) AddHistory(entries []store.HistoryEntry, keep int) error {
	if keep < 1 {
		return errors.New("add history: keep must be at least 1")
	}
	data := make([][]byte, len(entries))
	for i, e := range entries {
		if e.Endpoint == "" {
			return errors.New("add history: empty endpoint")
		}
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("add history of %s: %w", e.Endpoint, err)
		}
		data[i] = b
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		trimmed := map[string]bool{}
		for i, e := range entries {
			if _, err := tx.Exec(ctx, "INSERT INTO device_history (endpoint, record) VALUES ($1, $2)", e.Endpoint, data[i]); err != nil {
				return fmt.Errorf("add history of %s: %w", e.Endpoint, err)
			}
		}
		for _, e := range entries {
			if trimmed[e.Endpoint] {
				continue
			}
			trimmed[e.Endpoint] = true
			_, err := tx.Exec(ctx, `DELETE FROM device_history WHERE endpoint = $1 AND seq <= (
				SELECT seq FROM device_history WHERE endpoint = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)`, e.Endpoint, keep)
			if err != nil {
				return fmt.Errorf("trim history of %s: %w", e.Endpoint, err)
			}
		}
		return nil
	})
}

// History implements store.HistoryStore.
func (s *Store) History(ep string, limit int) ([]store.HistoryEntry, error) {
	return list[store.HistoryEntry](s, "history of "+ep, `SELECT record FROM (
		SELECT seq, record FROM device_history WHERE endpoint = $1 ORDER BY seq DESC LIMIT $2) newest ORDER BY seq`, ep, max(limit, 0))
}

// AddAudit implements store.AuditStore.
func (s *Store) AddAudit(a store.AuditEntry, keep int) error {
	if keep < 1 {
		return errors.New("add audit: keep must be at least 1")
	}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("add audit: %w", err)
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO audit (record, domain) VALUES ($1, $2)", data, auditDomain(a)); err != nil {
			return fmt.Errorf("add audit: %w", err)
		}
		_, err := tx.Exec(ctx, `DELETE FROM audit WHERE seq <= (SELECT seq FROM audit ORDER BY seq DESC OFFSET $1 LIMIT 1)`, keep)
		if err != nil {
			return fmt.Errorf("trim audit: %w", err)
		}
		return nil
	})
}

// Audit implements store.AuditStore.
func (s *Store) Audit(limit int) ([]store.AuditEntry, error) {
	return list[store.AuditEntry](s, "audit", `SELECT record FROM (
		SELECT seq, record FROM audit ORDER BY seq DESC LIMIT $1) newest ORDER BY seq`, max(limit, 0))
}

// auditDomain is the domain column of an audit entry.
func auditDomain(a store.AuditEntry) string {
	if a.Domain == "" {
		return store.DefaultDomain
	}
	return a.Domain
}
