package campaign

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzCampaignDefinition: a campaign as the API receives it is accepted
// with consistent waves or refused with ErrBadCampaign, never a panic.
func FuzzCampaignDefinition(f *testing.F) {
	f.Add([]byte(`{"image":"ab","method":"pull","waves":[1,10,100],"concurrency":5,"successThreshold":0.9,"errorThreshold":0.2,"window":{"start":"22:00","end":"04:00"}}`))
	f.Add([]byte(`{"method":"push","targets":{"attributes":{"ep":"sensor-*"}},"waves":[50]}`))
	f.Add([]byte(`{"waves":[100,10]}`))
	f.Add([]byte(`{"window":{"start":"25:00","end":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Campaign
		if json.Unmarshal(data, &c) != nil {
			return
		}
		if err := validate(&c); err != nil {
			return
		}
		if len(c.Waves) == 0 || c.Waves[len(c.Waves)-1] != 100 || c.Concurrency <= 0 {
			t.Fatalf("validated campaign %+v", c)
		}
		c.Planned = 1000
		prev := 0
		for k := 0; k < 1200; k += 7 {
			w := waveOf(&c, k)
			if w < prev || w >= len(c.Waves) {
				t.Fatalf("device %d in wave %d after %d (%v)", k, w, prev, c.Waves)
			}
			prev = w
		}
		_ = WindowOpen(c.Window, time.Now())
	})
}
