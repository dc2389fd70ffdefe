package bolt

import (
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/fotastack/fota/server/store"
)

// PutCampaign implements store.CampaignStore.
func (s *Store) PutCampaign(c store.Campaign, devices []store.CampaignDevice) error {
	if c.ID == "" {
		return errors.New("put campaign: empty id")
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketCampaigns), []byte(c.ID), c); err != nil {
			return err
		}
		b, err := tx.Bucket(bucketCampaignDevices).CreateBucketIfNotExists([]byte(c.ID))
		if err != nil {
			return err
		}
		for _, d := range devices {
			if err := putJSON(b, []byte(d.Endpoint), d); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutCampaignDevice implements store.CampaignStore.
func (s *Store) PutCampaignDevice(id string, d store.CampaignDevice) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCampaignDevices).Bucket([]byte(id))
		if b == nil {
			return fmt.Errorf("%w: campaign %s", store.ErrNotFound, id)
		}
		return putJSON(b, []byte(d.Endpoint), d)
	})
}

// Campaigns implements store.CampaignStore.
func (s *Store) Campaigns() ([]store.Campaign, error) {
	return all[store.Campaign](s.db, bucketCampaigns)
}

// CampaignDevices implements store.CampaignStore.
func (s *Store) CampaignDevices(id string) ([]store.CampaignDevice, error) {
	var out []store.CampaignDevice
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCampaignDevices).Bucket([]byte(id))
		if b == nil {
			return fmt.Errorf("%w: campaign %s", store.ErrNotFound, id)
		}
		return forEach(b, func(_ []byte, d store.CampaignDevice) error {
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read devices of campaign %s: %w", id, err)
	}
	return out, nil
}
