package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
)

// Domains, tokens and ownership (store.DomainStore); the tables are those
// of migrations/0002_domains.sql.

// AddDomain implements store.DomainStore.
func (s *Store) AddDomain(d store.Domain) error {
	if d.Name == store.DefaultDomain {
		return fmt.Errorf("%w: domain %q", store.ErrExists, d.Name)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	c, cancel := ctx()
	defer cancel()
	if _, err := s.pool.Exec(c, "INSERT INTO domains (name, record) VALUES ($1, $2)", d.Name, data); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: domain %q", store.ErrExists, d.Name)
		}
		return fmt.Errorf("add domain %q: %w", d.Name, err)
	}
	return nil
}

// Domains implements store.DomainStore.
func (s *Store) Domains() ([]store.Domain, error) {
	return list[store.Domain](s, "domains", "SELECT record FROM domains ORDER BY name")
}

// PutToken implements store.DomainStore.
func (s *Store) PutToken(t store.Token) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	c, cancel := ctx()
	defer cancel()
	_, err = s.pool.Exec(c, `INSERT INTO api_tokens (id, domain, hash, record) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET domain = $2, hash = $3, record = $4`, t.ID, t.Domain, t.Hash, data)
	if isUniqueViolation(err) {
		return fmt.Errorf("put token %s: %w: token hash", t.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put token %s: %w", t.ID, err)
	}
	return nil
}

// TokenByHash implements store.DomainStore.
func (s *Store) TokenByHash(hash string) (store.Token, error) {
	var t store.Token
	c, cancel := ctx()
	defer cancel()
	err := getJSON(c, s.pool, &t, "token", "SELECT record FROM api_tokens WHERE hash = $1", hash)
	return t, err
}

// Tokens implements store.DomainStore.
func (s *Store) Tokens(domain string) ([]store.Token, error) {
	return list[store.Token](s, "tokens of "+domain, "SELECT record FROM api_tokens WHERE domain = $1 ORDER BY id", domain)
}

// Claim implements store.DomainStore: one statement, so two domains
// claiming one key at once see one winner.
func (s *Store) Claim(kind, key, domain string) error {
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO owners (kind, key, domain) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", kind, key, domain); err != nil {
			return fmt.Errorf("claim %s %q: %w", kind, key, err)
		}
		var have string
		if err := tx.QueryRow(ctx, "SELECT domain FROM owners WHERE kind = $1 AND key = $2", kind, key).Scan(&have); err != nil {
			return fmt.Errorf("claim %s %q: %w", kind, key, err)
		}
		if have != domain {
			return fmt.Errorf("%w: %s %q belongs to another domain", store.ErrExists, kind, key)
		}
		return nil
	})
}

// Owner implements store.DomainStore.
func (s *Store) Owner(kind, key string) (string, error) {
	c, cancel := ctx()
	defer cancel()
	var d string
	err := s.pool.QueryRow(c, "SELECT domain FROM owners WHERE kind = $1 AND key = $2", kind, key).Scan(&d)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: owner of %s %q", store.ErrNotFound, kind, key)
	}
	if err != nil {
		return "", fmt.Errorf("read owner of %s %q: %w", kind, key, err)
	}
	return d, nil
}

// Owners implements store.DomainStore.
func (s *Store) Owners(kind string) (map[string]string, error) {
	c, cancel := ctx()
	defer cancel()
	rows, err := s.pool.Query(c, "SELECT key, domain FROM owners WHERE kind = $1", kind)
	if err != nil {
		return nil, fmt.Errorf("read owners of %s: %w", kind, err)
	}
	out := map[string]string{}
	var k, d string
	_, err = pgx.ForEachRow(rows, []any{&k, &d}, func() error { out[k] = d; return nil })
	if err != nil {
		return nil, fmt.Errorf("read owners of %s: %w", kind, err)
	}
	return out, nil
}

// Release implements store.DomainStore.
func (s *Store) Release(kind, key string) error {
	c, cancel := ctx()
	defer cancel()
	if _, err := s.pool.Exec(c, "DELETE FROM owners WHERE kind = $1 AND key = $2", kind, key); err != nil {
		return fmt.Errorf("release %s %q: %w", kind, key, err)
	}
	return nil
}
