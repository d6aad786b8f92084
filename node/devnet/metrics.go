package devnet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/node/nodeproc"
	"github.com/califusion/califusion/protocols/adminrpc"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MetricDeltas is, per node name, the change of each headline series (HeadlineMetrics) between a
// scrape of the node's /metrics at the start of the story and one at its end. A series the end
// scrape exposes is always a key (califusion_build_info's delta is 0: its presence is the point);
// one it does not expose is absent.
type MetricDeltas map[string]map[string]float64

// HeadlineMetrics are the series the devnet reports: counters and gauges by name (summed over
// their labels), histograms by their _count (summed over their labels).
var HeadlineMetrics = []string{
	metrics.Namespace + "_transfer_in_bytes_total",
	metrics.Namespace + "_transfer_out_bytes_total",
	metrics.Namespace + "_chunks_fetched_total",
	metrics.Namespace + "_chunks_served_total",
	metrics.Namespace + "_fetch_duration_seconds_count",
	metrics.Namespace + "_updates_total",
	metrics.Namespace + "_rounds_aggregated_total",
	metrics.Namespace + "_hook_duration_seconds_count",
	metrics.Namespace + "_payments_total",
	metrics.Namespace + "_payments_amount_base_units_total",
	metrics.Namespace + "_payments_fees_base_units_total",
	metrics.Namespace + "_key_releases_total",
	metrics.Namespace + "_anchor_results_total",
	metrics.Namespace + "_icp_call_duration_seconds_count",
	metrics.Namespace + "_icp_call_errors_total",
	metrics.Namespace + "_calimero_call_duration_seconds_count",
	metrics.Namespace + "_calimero_call_errors_total",
	metrics.Namespace + "_dht_provide_failures_total",
	metrics.CatalogModelsName,
	metrics.BlobBytesName,
	metrics.RoundsName,
	metrics.PeersName,
	metrics.Namespace + "_build_info",
}

// headlineLines are the names a line of the exposition may carry to matter: the headline
// series, and for a histogram's _count its family name and its _bucket, _sum and _count lines.
var headlineLines = func() map[string]bool {
	m := map[string]bool{}
	for _, h := range HeadlineMetrics {
		m[h] = true
		if base, ok := strings.CutSuffix(h, "_count"); ok {
			for _, s := range []string{"", "_bucket", "_sum", "_count"} {
				m[base+s] = true
			}
		}
	}
	return m
}()

// keepLines copies to a buffer only the exposition's lines of headline families (a node's
// exposition is ~80 KB, mostly libp2p and RPC histograms; parsing only these keeps a scrape at
// a fraction of a millisecond on the devnet's side).
func keepLines(r io.Reader) (*bytes.Buffer, error) {
	var out bytes.Buffer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		name := line
		if rest, ok := bytes.CutPrefix(line, []byte("# ")); ok {
			// # HELP name ... or # TYPE name ...
			f := bytes.Fields(rest)
			if len(f) < 2 {
				continue
			}
			name = f[1]
		} else if i := bytes.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if headlineLines[string(name)] {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return &out, sc.Err()
}

// parseHeadline parses a Prometheus text exposition and returns the headline series in it,
// each summed over its labels (a histogram or summary as name_count).
func parseHeadline(r io.Reader) (map[string]float64, error) {
	kept, err := keepLines(r)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(kept)
	if err != nil {
		return nil, err
	}
	all := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				all[name] += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				all[name] += m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				all[name] += m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				all[name+"_count"] += float64(m.GetHistogram().GetSampleCount())
			case dto.MetricType_SUMMARY:
				all[name+"_count"] += float64(m.GetSummary().GetSampleCount())
			}
		}
	}
	out := make(map[string]float64, len(HeadlineMetrics))
	for _, name := range HeadlineMetrics {
		if v, ok := all[name]; ok {
			out[name] = v
		}
	}
	return out, nil
}

// deltas is after − before for every series after has (a series before lacks counts from 0).
func deltas(before, after map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(after))
	for name, v := range after {
		out[name] = v - before[name]
	}
	return out
}

// scrapeHTTP is the client of the scrapes: loopback, so a short timeout.
var scrapeHTTP = &http.Client{Timeout: 10 * time.Second}

// scrapeNode reads GET /metrics from n's admin listener with its read-only metrics token.
func scrapeNode(ctx context.Context, n *nodeproc.Node) (map[string]float64, error) {
	tok, err := os.ReadFile(filepath.Join(n.Datadir, adminrpc.MetricsTokenFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.RPCAddr()+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Accept-Encoding", "identity") // loopback: gzip would only cost both sides CPU
	resp, err := scrapeHTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: GET /metrics: %w", n.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /metrics: %s", n.Name, resp.Status)
	}
	v, err := parseHeadline(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: /metrics: %w", n.Name, err)
	}
	return v, nil
}

// scrapeAll scrapes every running node concurrently; the result is indexed like nodes (nil for a
// node the story stopped).
func scrapeAll(ctx context.Context, nodes []*nodeproc.Node) ([]map[string]float64, error) {
	out := make([]map[string]float64, len(nodes))
	err := onEach(nodes, func(i int, n *nodeproc.Node) (err error) {
		if !n.Running() {
			return nil
		}
		out[i], err = scrapeNode(ctx, n)
		return err
	})
	return out, err
}

// metricDeltas pairs the two scrapes of nodes into MetricDeltas (a node stopped by the end has
// none).
func metricDeltas(nodes []*nodeproc.Node, before, after []map[string]float64) MetricDeltas {
	out := MetricDeltas{}
	for i, n := range nodes {
		if after[i] == nil {
			continue
		}
		out[n.Name] = deltas(before[i], after[i])
	}
	return out
}

// printMetrics prints the metrics table: a column per role (the nodes sharing a role list, in
// the order of nodes), a row per headline series that moved on some node; a column of several
// nodes shows one value when they agree and min..max when they do not.
func printMetrics(w io.Writer, nodes []NodeReport, d MetricDeltas) {
	if len(d) == 0 {
		return
	}
	type group struct {
		roles string
		names []string
	}
	var groups []*group
	byRoles := map[string]*group{}
	for _, n := range nodes {
		roles := strings.Join(n.Roles, ",")
		g := byRoles[roles]
		if g == nil {
			g = &group{roles: roles}
			byRoles[roles] = g
			groups = append(groups, g)
		}
		g.names = append(g.names, n.Name)
	}
	var rows []string
	for _, name := range HeadlineMetrics {
		for _, n := range nodes {
			if d[n.Name][name] != 0 {
				rows = append(rows, name)
				break
			}
		}
	}
	fmt.Fprintln(w, "\nmetrics that moved during the story (change per node; a role of several nodes: min..max):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"  METRIC"}
	for _, g := range groups {
		head = append(head, fmt.Sprintf("%s (%d)", strings.ToUpper(g.roles), len(g.names)))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, name := range rows {
		cells := []string{"  " + strings.TrimPrefix(name, metrics.Namespace+"_")}
		for _, g := range groups {
			vals := make([]float64, 0, len(g.names))
			for _, n := range g.names {
				vals = append(vals, d[n][name])
			}
			sort.Float64s(vals)
			cell := formatDelta(vals[0])
			if vals[len(vals)-1] != vals[0] {
				cell += ".." + formatDelta(vals[len(vals)-1])
			}
			cells = append(cells, cell)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func formatDelta(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
