package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The scrape-time gauges read the services through these small interfaces when Prometheus
// scrapes, so the services keep no gauge of their own. A nil source leaves its gauge out.

// CatalogSource is the model catalog (*catalog.Service implements it).
type CatalogSource interface {
	// Count is the number of models in the catalog.
	Count() int
}

// JobSource is the jobs manager (*jobs.Manager implements it).
type JobSource interface {
	// Active counts the queued or running jobs by kind.
	Active() map[string]int
}

// RoundSource is the rounds service (*rounds.Service implements it).
type RoundSource interface {
	// CountByState counts the rounds this node knows by state.
	CountByState() (map[string]int, error)
}

// PeerSource counts connected peers by the role their presence claims.
type PeerSource interface {
	// PeersByRole counts connected peers per claimed role (a peer with several roles counts
	// once for each; one with no presence counts as "unknown").
	PeersByRole() map[string]int
}

// BlobSource measures the model ciphertext on disk.
type BlobSource interface {
	// BlobBytes is the size of the stored ciphertext files.
	BlobBytes() (int64, error)
}

// Sources are what the scrape-time gauges read.
type Sources struct {
	Catalog CatalogSource
	Jobs    JobSource
	Rounds  RoundSource
	Peers   PeerSource
	Blobs   BlobSource
}

// Names of the scrape-time gauges.
const (
	CatalogModelsName = Namespace + "_catalog_models"
	BlobBytesName     = Namespace + "_blob_bytes"
	JobsActiveName    = Namespace + "_jobs_active"
	RoundsName        = Namespace + "_rounds"
	PeersName         = Namespace + "_peers"
)

// Observe makes the scrape-time gauges read src; call it before Register.
func (s *Set) Observe(src Sources) {
	s.scrape = &scrapeCollector{
		src:     src,
		catalog: prometheus.NewDesc(CatalogModelsName, "Models in this node's catalog.", nil, nil),
		blobs:   prometheus.NewDesc(BlobBytesName, "Size of the model ciphertext files in the datadir's blobs folder.", nil, nil),
		jobs:    prometheus.NewDesc(JobsActiveName, "Queued or running jobs by kind.", []string{"kind"}, nil),
		rounds:  prometheus.NewDesc(RoundsName, "Training rounds this node knows, by state (open, aggregating, done, failed).", []string{"state"}, nil),
		peers:   prometheus.NewDesc(PeersName, "Connected peers by the role their presence claims (unknown: no presence heard).", []string{"role"}, nil),
	}
}

// scrapeCollector reads the services at scrape time.
type scrapeCollector struct {
	src                                 Sources
	catalog, blobs, jobs, rounds, peers *prometheus.Desc
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.catalog
	ch <- c.blobs
	ch <- c.jobs
	ch <- c.rounds
	ch <- c.peers
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Catalog != nil {
		ch <- prometheus.MustNewConstMetric(c.catalog, prometheus.GaugeValue, float64(c.src.Catalog.Count()))
	}
	if c.src.Blobs != nil {
		if n, err := c.src.Blobs.BlobBytes(); err == nil {
			ch <- prometheus.MustNewConstMetric(c.blobs, prometheus.GaugeValue, float64(n))
		} else {
			ch <- prometheus.NewInvalidMetric(c.blobs, err)
		}
	}
	if c.src.Jobs != nil {
		for kind, n := range c.src.Jobs.Active() {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(n), kind)
		}
	}
	if c.src.Rounds != nil {
		if by, err := c.src.Rounds.CountByState(); err == nil {
			for state, n := range by {
				ch <- prometheus.MustNewConstMetric(c.rounds, prometheus.GaugeValue, float64(n), state)
			}
		} else {
			ch <- prometheus.NewInvalidMetric(c.rounds, err)
		}
	}
	if c.src.Peers != nil {
		for role, n := range c.src.Peers.PeersByRole() {
			ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(n), role)
		}
	}
}
