package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/net/blockwise"
)

// FuzzBlock2Range: any option value and size give a range inside the
// representation or an error, never a panic.
func FuzzBlock2Range(f *testing.F) {
	for _, c := range []struct {
		num  int64
		szx  blockwise.SZX
		size int
	}{{0, blockwise.SZX1024, 5000}, {4, blockwise.SZX1024, 5000}, {9, blockwise.SZX512, 5000}, {0, blockwise.SZX16, 0}} {
		v, _ := blockwise.EncodeBlockOption(c.szx, c.num, false)
		f.Add(v, c.size)
	}
	f.Fuzz(func(t *testing.T, v uint32, size int) {
		if size < 0 || size > MaxImageSize {
			return
		}
		off, n, err := block2Range(v, size)
		if err != nil {
			return
		}
		if off < 0 || n < 0 || off+n > size || n > 1024 {
			t.Fatalf("range [%d,+%d) of %d bytes", off, n, size)
		}
	})
}

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
		if err := c.validate(); err != nil {
			return
		}
		if len(c.Waves) == 0 || c.Waves[len(c.Waves)-1] != 100 || c.Concurrency <= 0 {
			t.Fatalf("validated campaign %+v", c)
		}
		c.Planned = 1000
		prev := 0
		for k := 0; k < 1200; k += 7 {
			w := c.waveOf(k)
			if w < prev || w >= len(c.Waves) {
				t.Fatalf("device %d in wave %d after %d (%v)", k, w, prev, c.Waves)
			}
			prev = w
		}
		_ = c.Window.Open(time.Now())
	})
}
