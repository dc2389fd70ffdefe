package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
)

// PutBootstrapConfig implements store.BootstrapStore.
func (s *Store) PutBootstrapConfig(ep string, c *store.BootstrapConfig) error {
	if ep == "" {
		return errors.New("put bootstrap config: empty endpoint")
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("put bootstrap config of %s: %w", ep, err)
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO bootstrap_configs (endpoint, record) VALUES ($1, $2)
			ON CONFLICT (endpoint) DO UPDATE SET record = excluded.record`, ep, data)
		if err != nil {
			return fmt.Errorf("put bootstrap config of %s: %w", ep, err)
		}
		return nil
	})
}

// BootstrapConfig implements store.BootstrapStore.
func (s *Store) BootstrapConfig(ep string) (*store.BootstrapConfig, error) {
	c, cancel := ctx()
	defer cancel()
	var cfg store.BootstrapConfig
	if err := getJSON(c, s.pool, &cfg, fmt.Sprintf("bootstrap config %q", ep), "SELECT record FROM bootstrap_configs WHERE endpoint = $1", ep); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// DeleteBootstrapConfig implements store.BootstrapStore.
func (s *Store) DeleteBootstrapConfig(ep string) error {
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM bootstrap_configs WHERE endpoint = $1", ep)
		if err != nil {
			return fmt.Errorf("delete bootstrap config of %s: %w", ep, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: bootstrap config %q", store.ErrNotFound, ep)
		}
		return nil
	})
}

// BootstrapConfigs implements store.BootstrapStore.
func (s *Store) BootstrapConfigs() (map[string]*store.BootstrapConfig, error) {
	c, cancel := ctx()
	defer cancel()
	rows, err := s.pool.Query(c, "SELECT endpoint, record FROM bootstrap_configs")
	if err != nil {
		return nil, fmt.Errorf("read bootstrap configs: %w", err)
	}
	defer rows.Close()
	out := map[string]*store.BootstrapConfig{}
	for rows.Next() {
		var ep string
		var data []byte
		if err := rows.Scan(&ep, &data); err != nil {
			return nil, fmt.Errorf("read bootstrap configs: %w", err)
		}
		var cfg store.BootstrapConfig
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("decode bootstrap config of %s: %w", ep, err)
		}
		out[ep] = &cfg
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read bootstrap configs: %w", err)
	}
	return out, nil
}

// PutBootstrapCredential implements store.BootstrapStore.
func (s *Store) PutBootstrapCredential(c store.Credential) error { return bsCredentials.put(s, c) }

// BootstrapCredential implements store.BootstrapStore.
func (s *Store) BootstrapCredential(ep string) (store.Credential, error) {
	return bsCredentials.get(s, "endpoint", ep)
}

// BootstrapCredentialByIdentity implements store.BootstrapStore.
func (s *Store) BootstrapCredentialByIdentity(identity string) (store.Credential, error) {
	return bsCredentials.get(s, "identity", identity)
}

// DeleteBootstrapCredential implements store.BootstrapStore.
func (s *Store) DeleteBootstrapCredential(ep string) error { return bsCredentials.delete(s, ep) }

// BootstrapCredentials implements store.BootstrapStore.
func (s *Store) BootstrapCredentials() ([]store.Credential, error) {
	return list[store.Credential](s, "bootstrap credentials", "SELECT record FROM bootstrap_credentials")
}
