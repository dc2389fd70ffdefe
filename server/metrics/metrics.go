// Package metrics exposes the server's numbers to Prometheus: what the
// parts already count (DTLS handshakes and sessions, Block2 blocks served,
// campaign devices) is read at scrape time by one collector, and what only
// the event bus sees (registrations, updates, de-registrations) is counted
// from it. All collectors are registered here, in one registry, so the
// names can be linted in one place.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fotastack/fota/server/campaign"
	"github.com/fotastack/fota/server/dm"
	"github.com/fotastack/fota/server/events"
	"github.com/fotastack/fota/server/firmware"
	"github.com/fotastack/fota/server/store"
)

// Sources are the parts whose numbers are exported; a nil part has none.
type Sources struct {
	DM        *dm.Server
	Firmware  *firmware.Repository
	Campaigns *campaign.Engine
	Store     store.SettingStore
}

// Metrics is the server's registry and the collectors in it.
type Metrics struct {
	reg  *prometheus.Registry
	src  Sources
	evs  *prometheus.CounterVec
	stl  prometheus.Histogram
	stop func()
	done chan struct{}
	once sync.Once
}

// New registers the collectors over src and starts counting events; Close
// stops that.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), src: src, done: make(chan struct{})}
	m.evs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fota_device_events_total",
		Help: "Device events seen on the event bus, by type (REGISTRATION, UPDATED, DEREGISTRATION, NOTIFICATION, SEND).",
	}, []string{"type"})
	for _, t := range []string{events.Registration, events.Updated, events.Deregistration, events.Notification, events.Send} {
		m.evs.WithLabelValues(t) // present at 0 before the first event
	}
	// Store latency is sampled with a settings read, the cheapest call
	// every store has, at each scrape and readiness probe: a slow disk
	// or database shows here without wrapping every store method.
	m.stl = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "fota_store_probe_duration_seconds",
		Help:    "Time of a settings read from the store, sampled at each scrape and readiness probe.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
	})
	m.reg.MustRegister(m.evs, m.stl, (*collector)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.DM != nil {
		ch, cancel := src.DM.Events().Subscribe(1024)
		m.stop = cancel
		go func() {
			defer close(m.done)
			for e := range ch {
				if e.Type != events.Campaign {
					m.evs.WithLabelValues(e.Type).Inc()
				}
			}
		}()
	} else {
		close(m.done)
	}
	return m
}

// Close stops counting events.
func (m *Metrics) Close() {
	m.once.Do(func() {
		if m.stop != nil {
			m.stop()
		}
		<-m.done
	})
}

// Registry is the registry the collectors are in (tests lint it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ProbeStore reads a setting and records how long it took; the error is
// the store's, store.ErrNotFound meaning reachable.
func (m *Metrics) ProbeStore() error {
	if m.src.Store == nil {
		return nil
	}
	t := time.Now()
	_, err := m.src.Store.Setting("metrics-probe")
	m.stl.Observe(time.Since(t).Seconds())
	return err
}

var (
	descHandshakes   = prometheus.NewDesc("fota_dtls_handshakes_total", "DTLS handshakes completed.", nil, nil)
	descHandshakeDur = prometheus.NewDesc("fota_dtls_handshake_duration_seconds", "Time of completed DTLS handshakes, from the first ClientHello to the last flight.", nil, nil)
	descRequests     = prometheus.NewDesc("fota_coap_requests_total", "CoAP requests sent to devices, by the answer's code (\"2.05\"), or \"timeout\" or \"error\" when none came.", []string{"code"}, nil)
	descRefused      = prometheus.NewDesc("fota_dtls_handshakes_refused_total", "DTLS handshakes failed or refused by the rate limit.", nil, nil)
	descSessions     = prometheus.NewDesc("fota_dtls_sessions", "DTLS sessions open now, live (in memory) or hibernated.", []string{"state"}, nil)
	descHibernations = prometheus.NewDesc("fota_dtls_hibernations_total", "DTLS sessions hibernated.", nil, nil)
	descResumptions  = prometheus.NewDesc("fota_dtls_resumptions_total", "Hibernated DTLS sessions resumed.", nil, nil)
	descDevices      = prometheus.NewDesc("fota_devices_registered", "Registered devices, by security mode and whether they use queue mode.", []string{"security", "queue_mode"}, nil)
	descBlocks       = prometheus.NewDesc("fota_firmware_blocks_served_total", "Block2 blocks of firmware packages served to devices.", nil, nil)
	descBytes        = prometheus.NewDesc("fota_firmware_served_bytes_total", "Bytes of firmware packages served to devices in Block2 blocks.", nil, nil)
	descCampaigns    = prometheus.NewDesc("fota_campaigns", "Campaigns, by state.", []string{"state"}, nil)
	descCampaignDevs = prometheus.NewDesc("fota_campaign_devices", "Devices in campaigns, by their state in the campaign.", []string{"state"}, nil)
	descRegDur       = prometheus.NewDesc("fota_registration_duration_seconds", "Time of accepted Register and Update exchanges, from the request's arrival to the answer (the store write included), by kind (register, update).", []string{"kind"}, nil)
	descRetransmits  = prometheus.NewDesc("fota_coap_retransmissions_total", "CoAP confirmable messages sent again: by the server for want of an acknowledgement (direction sent, DTLS sessions only), or by devices whose acknowledgement or answer was lost or late (direction received).", []string{"direction"}, nil)
	descStoreWrite   = prometheus.NewDesc("fota_store_write_duration_seconds", "Time of the store's writes of registrations (PutRegistration, DeleteRegistration), on the path every device waits on.", nil, nil)
)

// collector reads the parts' own counters at scrape time, so the parts
// need no Prometheus dependency and nothing is counted twice.
type collector Metrics

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHandshakes, descHandshakeDur, descRequests, descRefused, descSessions, descHibernations, descResumptions,
		descDevices, descBlocks, descBytes, descCampaigns, descCampaignDevs, descRegDur, descStoreWrite, descRetransmits} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	src := c.src
	if src.DM != nil {
		st := src.DM.DTLSStats()
		ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(st.Handshakes))
		for code, n := range src.DM.RequestStats() {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), code)
		}
		hl := st.HandshakeLatency
		ch <- prometheus.MustNewConstHistogram(descHandshakeDur, hl.Count, hl.Sum, hl.Buckets)
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(st.Refused))
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(st.Associations-st.Asleep), "live")
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(st.Asleep), "hibernated")
		ch <- prometheus.MustNewConstMetric(descHibernations, prometheus.CounterValue, float64(st.Hibernations))
		ch <- prometheus.MustNewConstMetric(descResumptions, prometheus.CounterValue, float64(st.Resumptions))
		rt := src.DM.RetransmissionStats()
		ch <- prometheus.MustNewConstMetric(descRetransmits, prometheus.CounterValue, float64(rt.Sent), "sent")
		ch <- prometheus.MustNewConstMetric(descRetransmits, prometheus.CounterValue, float64(rt.Received), "received")
		rs := src.DM.RegistrationStats()
		ch <- prometheus.MustNewConstHistogram(descRegDur, rs.Register.Count, rs.Register.Sum, rs.Register.Buckets, "register")
		ch <- prometheus.MustNewConstHistogram(descRegDur, rs.Update.Count, rs.Update.Sum, rs.Update.Buckets, "update")
		ch <- prometheus.MustNewConstHistogram(descStoreWrite, rs.StoreWrite.Count, rs.StoreWrite.Sum, rs.StoreWrite.Buckets)
		type key struct {
			sec   string
			queue bool
		}
		n := map[key]int{}
		for _, d := range src.DM.Devices() {
			r := d.Registration()
			n[key{r.Security, r.Queue}]++
		}
		for k, v := range n {
			q := "false"
			if k.queue {
				q = "true"
			}
			ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(v), k.sec, q)
		}
	}
	if src.Firmware != nil {
		blocks, bytes := src.Firmware.Block2Stats()
		ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.CounterValue, float64(blocks))
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(bytes))
	}
	if src.Campaigns != nil {
		// Every campaign state is present, at 0 too: a dashboard's query
		// should not depend on a campaign having existed.
		camps := map[string]int{campaign.Running: 0, campaign.Paused: 0, campaign.Aborted: 0, campaign.Completed: 0}
		devs := map[string]int{}
		for _, cp := range src.Campaigns.List() {
			camps[cp.State]++
			for s, v := range src.Campaigns.Status(cp.ID, false).Summary.ByState {
				devs[s] += v
			}
		}
		for s, v := range camps {
			ch <- prometheus.MustNewConstMetric(descCampaigns, prometheus.GaugeValue, float64(v), s)
		}
		for s, v := range devs {
			ch <- prometheus.MustNewConstMetric(descCampaignDevs, prometheus.GaugeValue, float64(v), s)
		}
	}
	_ = (*Metrics)(c).ProbeStore()
}
