package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
)

// PutRegistration implements store.RegistrationStore.
func (s *Store) PutRegistration(r store.Registration) error {
	if r.ID == "" {
		return errors.New("put registration: empty id")
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put registration %s: %w", r.ID, err)
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO registrations (id, endpoint, record) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET endpoint = excluded.endpoint, record = excluded.record`, r.ID, r.Endpoint, data)
		if err != nil {
			return fmt.Errorf("put registration %s: %w", r.ID, err)
		}
		return nil
	})
}

// DeleteRegistration implements store.RegistrationStore: the registration
// and its observations go in one transaction.
func (s *Store) DeleteRegistration(id string) error {
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM observations WHERE reg_id = $1", id); err != nil {
			return fmt.Errorf("delete observations of registration %s: %w", id, err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM registrations WHERE id = $1", id); err != nil {
			return fmt.Errorf("delete registration %s: %w", id, err)
		}
		return nil
	})
}

// Registrations implements store.RegistrationStore.
func (s *Store) Registrations() ([]store.Registration, error) {
	return list[store.Registration](s, "registrations", "SELECT record FROM registrations")
}

// RegistrationPage implements store.RegistrationStore: a keyset query
// over the index on endpoints in byte order (migration 0002), so the
// database reads from the cursor on and stops at the page's end. Search
// lowers ASCII letters only, on both sides, as store.RegistrationQuery
// defines it.
func (s *Store) RegistrationPage(q store.RegistrationQuery) ([]store.Registration, error) {
	if err := q.Valid(); err != nil {
		return nil, err
	}
	return list[store.Registration](s, "a page of registrations", `SELECT record FROM registrations
		WHERE endpoint COLLATE "C" > $1
		AND ($2 = '' OR strpos(translate(endpoint, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), $2) > 0)
		AND ($3 = '' OR record->>'security' = $3)
		AND ($4::boolean IS NULL OR (record->>'queue')::boolean = $4)
		ORDER BY endpoint COLLATE "C", id LIMIT $5`,
		q.After, asciiLower(q.Search), q.Security, q.Queue, q.Limit)
}

// asciiLower lowers the ASCII letters of s and nothing else, as
// translate() does to the endpoint in the query.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// credentialTable is the DM or the bootstrap credential table: the same
// rules, apart so that a bootstrap identity never opens a DM session.
type credentialTable struct {
	what  string // for errors
	table string
}

var (
	dmCredentials = credentialTable{"credential", "credentials"}
	bsCredentials = credentialTable{"bootstrap credential", "bootstrap_credentials"}
)

func (ct credentialTable) put(s *Store, c store.Credential) error {
	if c.Endpoint == "" {
		return fmt.Errorf("put %s: empty endpoint", ct.what)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("put %s of %s: %w", ct.what, c.Endpoint, err)
	}
	var identity *string // NULL: no identity to keep unique
	if c.Identity != "" {
		identity = &c.Identity
	}
	err = s.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO `+ct.table+` (endpoint, identity, record) VALUES ($1, $2, $3)
			ON CONFLICT (endpoint) DO UPDATE SET identity = excluded.identity, record = excluded.record`, c.Endpoint, identity, data)
		return err
	})
	if isUniqueViolation(err) {
		owner := "another endpoint"
		c2, cancel := ctx()
		defer cancel()
		var ep string
		if s.pool.QueryRow(c2, "SELECT endpoint FROM "+ct.table+" WHERE identity = $1", c.Identity).Scan(&ep) == nil {
			owner = fmt.Sprintf("endpoint %q", ep)
		}
		return fmt.Errorf("put %s: %w: psk identity %q already belongs to %s", ct.what, store.ErrExists, c.Identity, owner)
	}
	if err != nil {
		return fmt.Errorf("put %s of %s: %w", ct.what, c.Endpoint, err)
	}
	return nil
}

func (ct credentialTable) delete(s *Store, ep string) error {
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM "+ct.table+" WHERE endpoint = $1", ep)
		if err != nil {
			return fmt.Errorf("delete %s of %s: %w", ct.what, ep, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %s of %q", store.ErrNotFound, ct.what, ep)
		}
		return nil
	})
}

func (ct credentialTable) get(s *Store, column, key string) (store.Credential, error) {
	c, cancel := ctx()
	defer cancel()
	var cr store.Credential
	what := fmt.Sprintf("%s of %s %q", ct.what, column, key)
	err := getJSON(c, s.pool, &cr, what, "SELECT record FROM "+ct.table+" WHERE "+column+" = $1", key)
	return cr, err
}

// PutCredential implements store.CredentialStore; the unique identity
// column refuses an identity of another endpoint, also across nodes.
func (s *Store) PutCredential(c store.Credential) error { return dmCredentials.put(s, c) }

// DeleteCredential implements store.CredentialStore.
func (s *Store) DeleteCredential(ep string) error { return dmCredentials.delete(s, ep) }

// Credential implements store.CredentialStore.
func (s *Store) Credential(ep string) (store.Credential, error) {
	return dmCredentials.get(s, "endpoint", ep)
}

// CredentialByIdentity implements store.CredentialStore.
func (s *Store) CredentialByIdentity(identity string) (store.Credential, error) {
	return dmCredentials.get(s, "identity", identity)
}

// Credentials implements store.CredentialStore.
func (s *Store) Credentials() ([]store.Credential, error) {
	return list[store.Credential](s, "credentials", "SELECT record FROM credentials")
}

// PutObservation implements store.ObservationStore.
func (s *Store) PutObservation(o store.Observation) error {
	if len(o.Token) == 0 {
		return errors.New("put observation: empty token")
	}
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("put observation %x: %w", o.Token, err)
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO observations (token, reg_id, endpoint, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (token) DO UPDATE SET reg_id = excluded.reg_id, endpoint = excluded.endpoint, record = excluded.record`,
			o.Token, o.RegID, o.Endpoint, data)
		if err != nil {
			return fmt.Errorf("put observation %x: %w", o.Token, err)
		}
		return nil
	})
}

// DeleteObservation implements store.ObservationStore.
func (s *Store) DeleteObservation(token []byte) error {
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM observations WHERE token = $1", token); err != nil {
			return fmt.Errorf("delete observation %x: %w", token, err)
		}
		return nil
	})
}

// Observations implements store.ObservationStore.
func (s *Store) Observations() ([]store.Observation, error) {
	return list[store.Observation](s, "observations", "SELECT record FROM observations")
}

// Setting implements store.SettingStore.
func (s *Store) Setting(key string) ([]byte, error) {
	c, cancel := ctx()
	defer cancel()
	var v []byte
	if err := s.pool.QueryRow(c, "SELECT value FROM settings WHERE name = $1", key).Scan(&v); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%w: setting %q", store.ErrNotFound, key)
		}
		return nil, fmt.Errorf("read setting %q: %w", key, err)
	}
	return v, nil
}

// PutSetting implements store.SettingStore.
func (s *Store) PutSetting(key string, value []byte) error {
	if value == nil {
		value = []byte{} // the column is NOT NULL; nil and empty are alike
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, key, value)
		if err != nil {
			return fmt.Errorf("put setting %q: %w", key, err)
		}
		return nil
	})
}
