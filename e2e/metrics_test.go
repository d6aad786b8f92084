package e2e

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/calimero/calimerotest"
)

// samples is one scrape: series (name{labels}, as the exposition prints it) → value.
type samples map[string]float64

// scrape reads /metrics from n's metrics listener (rpc.metrics_addr), without a token.
func scrape(t *testing.T, n *harness.Node) samples {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(n.Datadir, node.MetricsAddrFile))
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	resp, err := http.Get("http://" + strings.TrimSpace(string(raw)) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: GET /metrics without a token = %d", n.Name, resp.StatusCode)
	}
	return parseExposition(t, resp.Body)
}

func parseExposition(t *testing.T, r io.Reader) samples {
	t.Helper()
	out := samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsMoveDuringARound: a publisher+coordinator (anchoring in an emulated Calimero) and a
// trainer, each with a metrics listener. Between a scrape before and one after publish, fetch,
// unlock (pay) and one round with one update, the named metrics move on the node where the
// thing happened; the metrics listener needs no token and serves no RPC, and the read-only
// metrics token opens /metrics on the admin listener but no RPC.
func TestMetricsMoveDuringARound(t *testing.T) {
	replica := startReplica(t)
	sim, err := calimerotest.New(calimerotest.Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	ctxID := sim.CreateContext()

	c := newCluster(t)
	coord := c.NewNodes("coord", 1, "publisher", "coordinator")[0]
	tr := c.NewNodes("tr", 1, "trainer")[0]
	useReplica(t, replica.URL(), coord, tr)
	all, err := devnet.LoadDigits()
	if err != nil {
		t.Fatal(err)
	}
	train, _ := all.Split(1, 0.2)
	shard := filepath.Join(tr.Datadir, "shard.csv")
	if err := devnet.WriteCSV(shard, train.Shards(1, 1, 0.5)[0]); err != nil {
		t.Fatal(err)
	}
	member := sim.Node(0)
	for _, n := range []*harness.Node{coord, tr} {
		if err := n.EditConfig(func(cfg *config.Config) {
			cfg.RPC.MetricsAddr = "127.0.0.1:0"
			if n == coord {
				cfg.Calimero = config.Calimero{Anchoring: "prefer", URL: member.URL(), ContextID: ctxID, ExecutorKey: member.Identity()}
			} else {
				cfg.Train.Data, cfg.Train.Epochs, cfg.Train.LearningRate = shard, 1, 0.5
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	c.start(coord)
	c.start(tr, "--bootstrap", coord.P2PAddr())
	replica.Mint(principal.MustDecode(tr.Info().ICPPrincipal), 10_000_000)
	waitHeard(t, coord, tr)
	ctx := t.Context()

	// The metrics listener is open to Prometheus and closed to the admin API.
	raw, _ := os.ReadFile(filepath.Join(coord.Datadir, node.MetricsAddrFile))
	resp, err := http.Post("http://"+strings.TrimSpace(string(raw))+"/", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"node_info"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("RPC on the metrics listener = %d, want 404", resp.StatusCode)
	}
	// The read-only token opens GET /metrics on the admin listener, and no RPC.
	mtok, err := os.ReadFile(filepath.Join(coord.Datadir, adminrpc.MetricsTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodGet, "/metrics", "", http.StatusOK},
		{http.MethodPost, "/", `{"jsonrpc":"2.0","id":1,"method":"node_info"}`, http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(c.method, "http://"+coord.RPCAddr()+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(mtok)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s on the admin listener with metrics.token = %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}

	beforeC, beforeT := scrape(t, coord), scrape(t, tr)

	base := fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses)
	enc, err := base.Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(path, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := coord.Client().ModelPublish(ctx, adminrpc.PublishParams{Path: path, Name: "digits", Price: "1000", Coordinators: []string{coord.Info().PeerID}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := tr.Client().ModelGet(ctx, pub.ModelID); return err })
	job, err := tr.Client().ModelFetch(ctx, pub.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, tr, job.JobID, 30*time.Second)
	if _, err := tr.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: pub.ModelID}); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	open, err := coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: pub.ModelID, MinUpdates: 1, Deadline: "2m", Rule: "fedavg"})
	if err != nil {
		t.Fatal(err)
	}
	tres, err := tr.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatalf("train_run: %v", err)
	}
	if sub, err := tr.Client().UpdateSubmit(ctx, open.RoundID, tres.UpdateID); err != nil || !sub.Accepted {
		t.Fatalf("update_submit = %+v, %v", sub, err)
	}
	waitFor(t, 60*time.Second, func() error {
		rs, err := coord.Client().RoundList(ctx, pub.ModelID)
		if err != nil {
			return err
		}
		if len(rs) != 1 || rs[0].State != "done" {
			return errf("rounds = %+v, want the one done", rs)
		}
		return nil
	})
	afterC, afterT := scrape(t, coord), scrape(t, tr)

	moved := func(who string, before, after samples, series string, min float64) {
		t.Helper()
		if d := after[series] - before[series]; d < min {
			t.Errorf("%s: %s moved by %v (from %v to %v), want at least %v", who, series, d, before[series], after[series], min)
		}
	}
	cipher := float64(len(enc)) // the ciphertext is at least the plaintext
	moved("trainer", beforeT, afterT, "califusion_transfer_in_bytes_total", cipher)
	moved("trainer", beforeT, afterT, "califusion_chunks_fetched_total", 1)
	moved("trainer", beforeT, afterT, `califusion_fetch_duration_seconds_count{result="ok"}`, 1)
	moved("coordinator", beforeC, afterC, "califusion_transfer_out_bytes_total", cipher)
	moved("coordinator", beforeC, afterC, "califusion_chunks_served_total", 1)
	moved("trainer", beforeT, afterT, `califusion_payments_total{result="ok"}`, 1)
	moved("trainer", beforeT, afterT, "califusion_payments_amount_base_units_total", 1000)
	moved("trainer", beforeT, afterT, `califusion_icp_call_duration_seconds_count{operation="transfer"}`, 1)
	moved("coordinator", beforeC, afterC, `califusion_icp_call_duration_seconds_count{operation="verify_payment"}`, 1)
	moved("coordinator", beforeC, afterC, `califusion_key_releases_total{result="released"}`, 1)
	moved("trainer", beforeT, afterT, `califusion_hook_duration_seconds_count{hook="builtin"}`, 1)
	moved("coordinator", beforeC, afterC, `califusion_updates_total{reason="",verdict="accepted"}`, 1)
	moved("coordinator", beforeC, afterC, `califusion_rounds{state="done"}`, 1)
	moved("trainer", beforeT, afterT, `califusion_rounds{state="done"}`, 1)
	moved("coordinator", beforeC, afterC, "califusion_rounds_aggregated_total", 1)
	// The manifest, the update's commitment and the aggregate's are anchored.
	moved("coordinator", beforeC, afterC, `califusion_anchor_results_total{operation="put",state="ok"}`, 3)
	moved("coordinator", beforeC, afterC, `califusion_calimero_call_duration_seconds_count{operation="put"}`, 3)
	moved("trainer", beforeT, afterT, "califusion_catalog_models", 1)
	moved("trainer", beforeT, afterT, "califusion_blob_bytes", cipher)
	if got := afterC[`califusion_rounds{state="open"}`]; got != 0 {
		t.Errorf("coordinator: open rounds after the round = %v, want 0", got)
	}
	if got := afterT[`califusion_peers{role="coordinator"}`]; got < 1 {
		t.Errorf("trainer: connected coordinators = %v, want at least 1", got)
	}
	for who, s := range map[string]samples{"coordinator": afterC, "trainer": afterT} {
		found := false
		for series, v := range s {
			if strings.HasPrefix(series, "califusion_build_info{") && strings.Contains(series, `goversion="go`) && v == 1 {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no califusion_build_info{...goversion=\"go...\"} 1", who)
		}
	}
}
