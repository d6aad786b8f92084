// Package metrics holds the node's Prometheus collectors in one place: the counters and
// histograms the services move where an event happens (through the nil-safe methods of *Set),
// and the gauges read from the services when Prometheus scrapes (Sources). Names follow
// Prometheus conventions (base units, _seconds, _bytes, _total); labels are low-cardinality
// (never a model ID or a peer ID).
//
// A nil *Set is valid and records nothing, so services built without metrics (tests) need no
// checks.
package metrics

import (
	"errors"
	"math/big"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Namespace prefixes every metric of the node.
const Namespace = "califusion"

// Labels values used by the counters (pre-initialised to 0, so dashboards see them at once).
const (
	ResultOK      = "ok"
	ResultError   = "error"
	ResultAlready = "already_paid"

	VerdictAccepted = "accepted"
	VerdictRejected = "rejected"

	StateError = "error" // an anchor call that failed before yielding a state
)

// Set is the node's collectors. Build it with New and register it with Register.
type Set struct {
	TransferInBytes  prometheus.Counter
	TransferOutBytes prometheus.Counter
	ChunksFetched    prometheus.Counter
	ChunksServed     prometheus.Counter
	FetchDuration    *prometheus.HistogramVec // result

	Updates           *prometheus.CounterVec // verdict, reason
	AggregateAccuracy prometheus.Gauge
	RoundsAggregated  prometheus.Counter
	HookDuration      *prometheus.HistogramVec // hook

	Payments     *prometheus.CounterVec // result
	PaidAmount   prometheus.Counter     // base units of the ledger's token
	FeesPaid     prometheus.Counter     // base units of the ledger's token
	KeyReleases  *prometheus.CounterVec // result
	AnchorResult *prometheus.CounterVec // operation, state

	ICPCallDuration      *prometheus.HistogramVec // operation
	ICPCallErrors        *prometheus.CounterVec   // operation
	CalimeroCallDuration *prometheus.HistogramVec // operation
	CalimeroCallErrors   *prometheus.CounterVec   // operation

	DHTProvideFailures prometheus.Counter

	BuildInfo *prometheus.GaugeVec // version, revision, goversion

	scrape *scrapeCollector
}

// Build describes the running binary, for califusion_build_info.
type Build struct {
	Version, Revision, GoVersion string
}

// BuildFromRuntime fills Revision and GoVersion from the binary's build info ("unknown" when
// absent) around version.
func BuildFromRuntime(version string) Build {
	b := Build{Version: version, Revision: "unknown", GoVersion: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				b.Revision = s.Value
			}
		}
	}
	return b
}

// Call latencies: from a local replica's milliseconds to a congested boundary node's seconds.
var callBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// ICP operations, Calimero operations and hook names the vectors are initialised with.
var (
	ICPOperations      = []string{"transfer", "log_length", "find_transfer", "verify_payment", "balance", "token", "kind"}
	CalimeroOperations = []string{"put", "get", "list"}
	Hooks              = []string{"builtin", "exec"}
)

// New returns the node's collectors, with build_info set from b. Nothing is registered yet.
func New(b Build) *Set {
	name := func(n string) string { return Namespace + "_" + n }
	s := &Set{
		TransferInBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: name("transfer_in_bytes_total"),
			Help: "Model ciphertext bytes received from peers by fetches (verified chunks written)."}),
		TransferOutBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: name("transfer_out_bytes_total"),
			Help: "Model ciphertext bytes served to peers (chunks read for the chunk protocol)."}),
		ChunksFetched: prometheus.NewCounter(prometheus.CounterOpts{Name: name("chunks_fetched_total"),
			Help: "Verified chunks received from peers by fetches."}),
		ChunksServed: prometheus.NewCounter(prometheus.CounterOpts{Name: name("chunks_served_total"),
			Help: "Chunks served to peers."}),
		FetchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name("fetch_duration_seconds"),
			Help:    "Duration of model fetch jobs (provider search, leaves and chunks), by result (ok, error).",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600}}, []string{"result"}),

		Updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("updates_total"),
			Help: "Training updates this coordinator judged, by verdict (accepted, rejected) and rejection reason (empty when accepted)."},
			[]string{"verdict", "reason"}),
		AggregateAccuracy: prometheus.NewGauge(prometheus.GaugeOpts{Name: name("aggregate_accuracy_ratio"),
			Help: "Accuracy (0..1) on train.eval_data of the last aggregate this coordinator published (absent before one is scored)."}),
		RoundsAggregated: prometheus.NewCounter(prometheus.CounterOpts{Name: name("rounds_aggregated_total"),
			Help: "Rounds this coordinator ended with a published aggregate."}),
		HookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name("hook_duration_seconds"),
			Help:    "Duration of the local training hook, by hook (builtin, exec).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}}, []string{"hook"}),

		Payments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("payments_total"),
			Help: "Payments for model lineages by result (ok: transferred now, already_paid: paid before, error)."}, []string{"result"}),
		PaidAmount: prometheus.NewCounter(prometheus.CounterOpts{Name: name("payments_amount_base_units_total"),
			Help: "Amount transferred by this node's payments, in the ledger token's base units (e8s for ICP)."}),
		FeesPaid: prometheus.NewCounter(prometheus.CounterOpts{Name: name("payments_fees_base_units_total"),
			Help: "Ledger fees of this node's payments, in the ledger token's base units (e8s for ICP)."}),
		KeyReleases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("key_releases_total"),
			Help: "Coordinator answers to unlock requests, by result (released, or the refusal's error class)."}, []string{"result"}),
		AnchorResult: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("anchor_results_total"),
			Help: "Calimero anchor operations by operation (put, get, list) and resulting state (verified, missing, invalid, ok, error)."},
			[]string{"operation", "state"}),

		ICPCallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name("icp_call_duration_seconds"),
			Help: "Latency of ICP ledger calls by operation.", Buckets: callBuckets}, []string{"operation"}),
		ICPCallErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("icp_call_errors_total"),
			Help: "ICP ledger calls that returned an error, by operation."}, []string{"operation"}),
		CalimeroCallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name("calimero_call_duration_seconds"),
			Help: "Latency of Calimero (merod) calls by operation.", Buckets: callBuckets}, []string{"operation"}),
		CalimeroCallErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("calimero_call_errors_total"),
			Help: "Calimero (merod) calls that failed, by operation."}, []string{"operation"}),

		DHTProvideFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: name("dht_provide_failures_total"),
			Help: "Batches of provider records the DHT provider refused to take."}),

		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name("build_info"),
			Help: "Always 1; the labels describe the running binary."}, []string{"version", "revision", "goversion"}),
	}
	s.BuildInfo.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)
	for _, r := range []string{ResultOK, ResultError} {
		s.FetchDuration.WithLabelValues(r)
	}
	for _, r := range []string{ResultOK, ResultAlready, ResultError} {
		s.Payments.WithLabelValues(r)
	}
	s.Updates.WithLabelValues(VerdictAccepted, "")
	s.KeyReleases.WithLabelValues("released")
	for _, op := range ICPOperations {
		s.ICPCallDuration.WithLabelValues(op)
		s.ICPCallErrors.WithLabelValues(op)
	}
	for _, op := range CalimeroOperations {
		s.CalimeroCallDuration.WithLabelValues(op)
		s.CalimeroCallErrors.WithLabelValues(op)
	}
	for _, h := range Hooks {
		s.HookDuration.WithLabelValues(h)
	}
	return s
}

// collectors lists every collector of s (the scrape-time one when Observe was called).
func (s *Set) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{
		s.TransferInBytes, s.TransferOutBytes, s.ChunksFetched, s.ChunksServed, s.FetchDuration,
		s.Updates, s.AggregateAccuracy, s.RoundsAggregated, s.HookDuration,
		s.Payments, s.PaidAmount, s.FeesPaid, s.KeyReleases, s.AnchorResult,
		s.ICPCallDuration, s.ICPCallErrors, s.CalimeroCallDuration, s.CalimeroCallErrors,
		s.DHTProvideFailures, s.BuildInfo,
	}
	if s.scrape != nil {
		cs = append(cs, s.scrape)
	}
	return cs
}

// Register registers every collector of s with reg. Call Observe first to include the
// scrape-time gauges.
func (s *Set) Register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range s.collectors() {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FetchedChunk counts one verified chunk of n ciphertext bytes received by a fetch.
func (s *Set) FetchedChunk(n int) {
	if s == nil {
		return
	}
	s.ChunksFetched.Inc()
	s.TransferInBytes.Add(float64(n))
}

// ServedChunk counts one chunk of n ciphertext bytes served to a peer.
func (s *Set) ServedChunk(n int) {
	if s == nil {
		return
	}
	s.ChunksServed.Inc()
	s.TransferOutBytes.Add(float64(n))
}

// FetchDone observes a fetch job that ran for d and ended with err.
func (s *Set) FetchDone(d time.Duration, err error) {
	if s == nil {
		return
	}
	s.FetchDuration.WithLabelValues(result(err)).Observe(d.Seconds())
}

// Update counts a judged update; reason is the rejection reason ("" when accepted).
func (s *Set) Update(accepted bool, reason string) {
	if s == nil {
		return
	}
	verdict := VerdictRejected
	if accepted {
		verdict, reason = VerdictAccepted, ""
	}
	s.Updates.WithLabelValues(verdict, reason).Inc()
}

// Aggregated counts a round ended with an aggregate and sets the aggregate accuracy when the
// report's metrics scored one ("accuracy").
func (s *Set) Aggregated(reportMetrics map[string]float64) {
	if s == nil {
		return
	}
	s.RoundsAggregated.Inc()
	if acc, ok := reportMetrics["accuracy"]; ok {
		s.AggregateAccuracy.Set(acc)
	}
}

// HookRan observes one run of training hook hook (builtin or exec) that took d.
func (s *Set) HookRan(hook string, d time.Duration) {
	if s == nil {
		return
	}
	s.HookDuration.WithLabelValues(hook).Observe(d.Seconds())
}

// Paid counts a payment: result is ResultOK, ResultAlready or ResultError; amount and fee (base
// units, nil when unknown) are added only for ResultOK.
func (s *Set) Paid(result string, amount, fee *big.Int) {
	if s == nil {
		return
	}
	s.Payments.WithLabelValues(result).Inc()
	if result != ResultOK {
		return
	}
	if amount != nil {
		f, _ := new(big.Float).SetInt(amount).Float64()
		s.PaidAmount.Add(f)
	}
	if fee != nil {
		f, _ := new(big.Float).SetInt(fee).Float64()
		s.FeesPaid.Add(f)
	}
}

// KeyRelease counts a coordinator's answer to an unlock: "released" or a refusal class.
func (s *Set) KeyRelease(result string) {
	if s == nil {
		return
	}
	s.KeyReleases.WithLabelValues(result).Inc()
}

// Anchor counts an anchor operation's resulting state.
func (s *Set) Anchor(operation, state string) {
	if s == nil {
		return
	}
	s.AnchorResult.WithLabelValues(operation, state).Inc()
}

// ICPCall observes a ledger call of operation that took d and ended with err.
func (s *Set) ICPCall(operation string, d time.Duration, err error) {
	if s == nil {
		return
	}
	s.ICPCallDuration.WithLabelValues(operation).Observe(d.Seconds())
	if err != nil {
		s.ICPCallErrors.WithLabelValues(operation).Inc()
	}
}

// CalimeroCall observes a Calimero call of operation that took d and ended with err.
func (s *Set) CalimeroCall(operation string, d time.Duration, err error) {
	if s == nil {
		return
	}
	s.CalimeroCallDuration.WithLabelValues(operation).Observe(d.Seconds())
	if err != nil {
		s.CalimeroCallErrors.WithLabelValues(operation).Inc()
	}
}

// ProvideFailed counts a batch of provider records the DHT provider refused.
func (s *Set) ProvideFailed() {
	if s == nil {
		return
	}
	s.DHTProvideFailures.Inc()
}

func result(err error) string {
	if err != nil {
		return ResultError
	}
	return ResultOK
}

// SampleCount is how many observations the histogram of v with labels holds (0 when it has
// none); tests of the services use it.
func SampleCount(v *prometheus.HistogramVec, labels ...string) uint64 {
	o, err := v.GetMetricWithLabelValues(labels...)
	if err != nil {
		return 0
	}
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}
