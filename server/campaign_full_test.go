package server_test

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/firmware"
)

// The full-image fallback against the project's real devices over DTLS
// (issue 7): a device running a version the repository does not know gets
// the whole v2 as a signed in-place package made from no old image, and a
// campaign in full mode sends it even to devices a delta would suit. Each
// device verifies it, writes it over whatever its image region holds,
// reboots and re-registers running v2 with result 1.
func TestCampaignRealClientsFullImage(t *testing.T) {
	if testing.Short() {
		t.Skip("real devices with in-place install")
	}
	for _, tc := range []struct {
		name, method string
		full         bool
	}{
		{"unknown-base-pull", campaign.DeliveryPull, false},
		{"full-mode-push", campaign.DeliveryPush, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startCampaigns(t, filepath.Join(t.TempDir(), "fota.db"))
			v1, v2 := testImages(40<<10, 11)
			if _, err := e.fw.AddImage("sim", "1.0", v1, false); err != nil {
				t.Fatal(err)
			}
			img2, err := e.fw.AddImage("sim", "2.0", v2, false)
			if err != nil {
				t.Fatal(err)
			}
			// A field image of another size, in no repository.
			field := make([]byte, 47<<10)
			rand.New(rand.NewSource(99)).Read(field)
			wantKind := map[string]string{}
			var eps []string
			for i := 0; i < 4; i++ {
				ep := fmt.Sprintf("full-%s-%d", tc.name, i)
				if i%2 == 0 {
					startRealDevice(t, e, ep, "0.9-field", field)
					wantKind[ep] = firmware.PackageFull
				} else {
					startRealDevice(t, e, ep, "1.0", v1)
					wantKind[ep] = firmware.PackageDelta
					if tc.full {
						wantKind[ep] = firmware.PackageFull
					}
				}
				eps = append(eps, ep)
			}
			waitFor(t, "devices registered", func() bool {
				for _, ep := range eps {
					if e.srv.Device(ep) == nil {
						return false
					}
				}
				return true
			})
			c, err := e.cm.Create(campaign.Campaign{Image: img2.ID, Targets: campaign.Selector{Endpoints: eps},
				Method: tc.method, Full: tc.full, Waves: []float64{100}, Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			c, states := waitCampaign(t, e.cm, c.ID, "ended", func(c campaign.Campaign, _ []campaign.Device) bool {
				return c.State != campaign.Running
			})
			if c.State != campaign.Completed {
				t.Fatalf("campaign %s: %s\n%+v", c.State, c.Reason, states)
			}
			for _, s := range states {
				if s.State != campaign.DeviceSucceeded || s.Result != 1 || s.PackageKind != wantKind[s.Endpoint] {
					t.Fatalf("device %+v, want succeeded with result 1 by a %s package", s, wantKind[s.Endpoint])
				}
				resp, err := e.srv.Read(context.Background(), s.Endpoint, "/3/0/3", nil)
				if err != nil || string(resp.Payload) != "2.0" {
					t.Fatalf("%s runs %q (%v)", s.Endpoint, resp.Payload, err)
				}
				t.Logf("%s: %s package of %d bytes for a %d-byte image", s.Endpoint, s.PackageKind, s.PackageSize, s.ImageSize)
			}
		})
	}
}
