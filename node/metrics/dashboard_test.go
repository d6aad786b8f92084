package metrics

import (
	"encoding/json"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/prometheus/client_golang/prometheus"
)

// capture is a Registerer that keeps what is registered with it.
type capture struct{ cs []prometheus.Collector }

func (c *capture) Register(col prometheus.Collector) error   { c.cs = append(c.cs, col); return nil }
func (c *capture) MustRegister(cols ...prometheus.Collector) { c.cs = append(c.cs, cols...) }
func (c *capture) Unregister(prometheus.Collector) bool      { return false }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// registeredNames lists every metric name the node registers from node/metrics (and the admin
// listener's RPC metrics), read from the collectors' descriptions so vectors without children
// count too; a histogram also answers to its _bucket, _sum and _count series.
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	s := New(Build{Version: "dev"})
	s.Observe(Sources{})
	c := &capture{}
	if err := s.Register(c); err != nil {
		t.Fatal(err)
	}
	adminrpc.NewServer("x", slog.New(slog.DiscardHandler), nil, c)
	names := map[string]bool{}
	histograms := map[string]bool{
		"califusion_fetch_duration_seconds": true, "califusion_hook_duration_seconds": true, "califusion_icp_call_duration_seconds": true,
		"califusion_calimero_call_duration_seconds": true, "califusion_rpc_call_seconds": true,
	}
	for _, col := range c.cs {
		ch := make(chan *prometheus.Desc, 16)
		go func() { col.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no fqName in %s", d)
			}
			names[m[1]] = true
			if histograms[m[1]] {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					names[m[1]+suf] = true
				}
			}
		}
	}
	for h := range histograms {
		if !names[h] {
			t.Errorf("histogram %s listed in this test is not registered", h)
		}
	}
	return names
}

// exprs returns every PromQL expression of the dashboard's panels (rows' panels included) and
// of its templating queries.
func exprs(t *testing.T) []string {
	t.Helper()
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(Dashboard, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	type panel struct {
		Title   string            `json:"title"`
		Type    string            `json:"type"`
		Panels  []json.RawMessage `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var out []string
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("panel: %v", err)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) == nil {
			out = append(out, q.Query)
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\bcalifusion_[a-zA-Z0-9_]+`)

// Every metric a dashboard query names is one the node registers: renaming a metric without
// the dashboard breaks this test.
func TestDashboardQueriesUseRegisteredMetrics(t *testing.T) {
	names := registeredNames(t)
	used := map[string]bool{}
	qs := exprs(t)
	if len(qs) < 20 {
		t.Fatalf("dashboard has %d queries, want at least 20", len(qs))
	}
	for _, q := range qs {
		found := metricName.FindAllString(q, -1)
		if len(found) == 0 {
			t.Errorf("query %q names no califusion metric", q)
		}
		for _, n := range found {
			used[n] = true
			if !names[n] {
				t.Errorf("dashboard query %q uses %s, which node/metrics does not register", q, n)
			}
		}
	}
	// And the dashboard shows every family of node/metrics.
	var missing []string
	for n := range names {
		if strings.HasSuffix(n, "_bucket") || strings.HasSuffix(n, "_sum") || strings.HasSuffix(n, "_count") {
			continue
		}
		base := n
		if !used[base] && !used[base+"_bucket"] && !used[base+"_count"] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics no dashboard panel shows: %v", missing)
	}
}
