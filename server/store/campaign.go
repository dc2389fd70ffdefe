package store

import "time"

// Selector chooses a campaign's devices: the listed endpoints, or every
// registered device that matches all the given filters. Attributes match
// registration attributes ("ep", "lwm2m", "b", "queue", "transport",
// "security", "identity") with path.Match globs.
type Selector struct {
	Endpoints  []string          `json:"endpoints,omitempty"`
	DeviceType string            `json:"deviceType,omitempty"` // /3/0/17; empty: the image's type
	Versions   []string          `json:"versions,omitempty"`   // /3/0/3 the device runs; empty: any
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Window is a daily maintenance window in UTC ("22:00" to "04:00" wraps
// midnight); devices start updating only inside it. Empty: always.
type Window struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Campaign is a firmware update campaign.
type Campaign struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Image      string `json:"image"` // target image ID
	DeviceType string `json:"deviceType"`
	Version    string `json:"version"` // target version
	// App and AppVersion, when App is set, make the campaign install that
	// application version (Software Management, /9) instead of firmware;
	// Image, DeviceType and Version are then empty.
	App        string   `json:"app,omitempty"`
	AppVersion string   `json:"appVersion,omitempty"`
	Targets    Selector `json:"targets"`
	// Domain is the domain the campaign was made in ("" the default): a
	// filter selects among that domain's devices only.
	Domain string `json:"domain,omitempty"`
	Method string `json:"method"` // push or pull
	Full   bool   `json:"full"`   // full image even where a delta is possible
	// Waves are cumulative percentages of the targeted devices, ascending
	// and ending at 100 (default [100]).
	Waves       []float64 `json:"waves"`
	Concurrency int       `json:"concurrency"` // devices updating at once (default 10)
	// SuccessThreshold is the fraction (0..1) of the devices of the waves so
	// far that must have succeeded before the next wave starts (default 1).
	SuccessThreshold float64 `json:"successThreshold"`
	// ErrorThreshold is the fraction (0..1) of the devices in the waves
	// started so far that may fail; above it the campaign pauses itself
	// (default 0.2; 1 disables).
	ErrorThreshold float64 `json:"errorThreshold"`
	Window         Window  `json:"window"`
	// AllowDowngrade lets the campaign move devices to an older version
	// than they run (refused otherwise).
	AllowDowngrade bool `json:"allowDowngrade,omitempty"`
	// DeviceTimeout fails a device that has not finished, or not answered,
	// or not registered, in this time (a Go duration, "15s", "2h"; default
	// the engine's).
	DeviceTimeout string `json:"deviceTimeout,omitempty"`
	// Retries is how many times a failed device is tried again on its own,
	// RetryBackoff ("1m" by default) after its first failure, doubling.
	Retries      int    `json:"retries,omitempty"`
	RetryBackoff string `json:"retryBackoff,omitempty"`

	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"` // why it paused or ended
	Wave    int       `json:"wave"`             // index of the current wave
	Planned int       `json:"planned"`          // targeted devices when it was created (waves are sized on it)
	Joined  int       `json:"joined"`           // devices taken in so far
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// CampaignDevice is one device's progress in a campaign.
type CampaignDevice struct {
	Endpoint    string    `json:"endpoint"`
	Seq         int       `json:"seq"`  // joining order
	Wave        int       `json:"wave"` // index into Campaign.Waves
	State       string    `json:"state"`
	Progress    int       `json:"progress"` // download percent
	Result      int       `json:"result"`   // last Update Result (/5/0/5) seen
	DeviceType  string    `json:"deviceType,omitempty"`
	FromVersion string    `json:"fromVersion,omitempty"`
	Package     string    `json:"package,omitempty"`
	PackageKind string    `json:"packageKind,omitempty"`
	PackageSize int       `json:"packageSize,omitempty"`
	ImageSize   int       `json:"imageSize,omitempty"`
	Offers      int       `json:"offers,omitempty"`       // times the package was offered
	OfferedAt   time.Time `json:"offeredAt,omitempty"`    // last offer
	RegID       string    `json:"registration,omitempty"` // registration when Update was executed
	Error       string    `json:"error,omitempty"`
	Started     time.Time `json:"started,omitempty"`
	Updated     time.Time `json:"updated"`
	// Attempts counts the automatic retries taken so far; RetryAt is when
	// a failed device is tried again (zero: not again).
	Attempts int       `json:"attempts,omitempty"`
	RetryAt  time.Time `json:"retryAt,omitzero"`
	// Waiting is since when the device's turn has come while it is not
	// registered (zero: it is, or its turn has not come).
	Waiting time.Time `json:"waitingSince,omitzero"`
}

// CampaignStore keeps campaigns and the state of each of their devices.
type CampaignStore interface {
	// PutCampaign stores c, replacing the record with c.ID, and the given
	// device states of it, in one atomic step.
	PutCampaign(c Campaign, devices []CampaignDevice) error
	// PutCampaignDevice stores one device's state in campaign id, replacing
	// any; ErrNotFound if the campaign is not stored.
	PutCampaignDevice(id string, d CampaignDevice) error
	// Campaigns returns all campaigns, in no set order.
	Campaigns() ([]Campaign, error)
	// CampaignDevices returns the device states of campaign id, in no set
	// order; ErrNotFound if the campaign is not stored.
	CampaignDevices(id string) ([]CampaignDevice, error)
}
