package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fotastack/fota/server/store"
)

// PutCampaign implements store.CampaignStore: the campaign and the given
// devices in one transaction.
func (s *Store) PutCampaign(c store.Campaign, devices []store.CampaignDevice) error {
	if c.ID == "" {
		return errors.New("put campaign: empty id")
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("put campaign %s: %w", c.ID, err)
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO campaigns (id, state, record) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, record = excluded.record`, c.ID, c.State, data)
		if err != nil {
			return fmt.Errorf("put campaign %s: %w", c.ID, err)
		}
		var b pgx.Batch
		for _, d := range devices {
			dd, err := json.Marshal(d)
			if err != nil {
				return fmt.Errorf("put campaign %s: device %s: %w", c.ID, d.Endpoint, err)
			}
			b.Queue(putDeviceSQL, c.ID, d.Endpoint, d.State, dd)
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("put campaign %s: devices: %w", c.ID, err)
		}
		return nil
	})
}

const putDeviceSQL = `INSERT INTO campaign_devices (campaign_id, endpoint, state, record) VALUES ($1, $2, $3, $4)
	ON CONFLICT (campaign_id, endpoint) DO UPDATE SET state = excluded.state, record = excluded.record`

// PutCampaignDevice implements store.CampaignStore; the foreign key to
// campaigns refuses a device of a campaign not stored.
func (s *Store) PutCampaignDevice(id string, d store.CampaignDevice) error {
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("put device %s of campaign %s: %w", d.Endpoint, id, err)
	}
	return s.tx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, putDeviceSQL, id, d.Endpoint, d.State, data)
		if isForeignKeyViolation(err) {
			return fmt.Errorf("put device %s: %w: campaign %s", d.Endpoint, store.ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("put device %s of campaign %s: %w", d.Endpoint, id, err)
		}
		return nil
	})
}

// Campaigns implements store.CampaignStore.
func (s *Store) Campaigns() ([]store.Campaign, error) {
	return list[store.Campaign](s, "campaigns", "SELECT record FROM campaigns")
}

// CampaignDevices implements store.CampaignStore. The campaign and its
// devices are read in one statement, so a campaign with no device yet is
// told from one not stored.
func (s *Store) CampaignDevices(id string) ([]store.CampaignDevice, error) {
	c, cancel := ctx()
	defer cancel()
	rows, err := s.pool.Query(c, `SELECT d.record FROM campaigns c LEFT JOIN campaign_devices d ON d.campaign_id = c.id WHERE c.id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("read devices of campaign %s: %w", id, err)
	}
	found := false
	out := []store.CampaignDevice{}
	for rows.Next() {
		found = true
		var data []byte
		if err := rows.Scan(&data); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read devices of campaign %s: %w", id, err)
		}
		if data == nil {
			continue // the campaign's row, without devices
		}
		var d store.CampaignDevice
		if err := json.Unmarshal(data, &d); err != nil {
			rows.Close()
			return nil, fmt.Errorf("decode a device of campaign %s: %w", id, err)
		}
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read devices of campaign %s: %w", id, err)
	}
	if !found {
		return nil, fmt.Errorf("%w: campaign %s", store.ErrNotFound, id)
	}
	return out, nil
}
