package e2e

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// cli runs the binary and returns its stdout, or with wantErr its stderr and stdout; it fails the
// test when the exit status disagrees with wantErr.
func cli(t *testing.T, wantErr bool, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if (err != nil) != wantErr {
		t.Fatalf("califusiond %s: err = %v, wantErr %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, wantErr, out, stderr.String())
	}
	if wantErr {
		return stderr.String() + string(out)
	}
	return string(out)
}

func TestCLIAgainstDaemon(t *testing.T) {
	c := newCluster(t)
	nodes := c.NewNodes("c", 2, "publisher", "coordinator")
	c.start(nodes[0])
	c.start(nodes[1])
	dd := nodes[0].Datadir

	var info adminrpc.NodeInfo
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", dd, "--json", "node", "info")), &info); err != nil {
		t.Fatal(err)
	}
	if info.PeerID != nodes[0].Info().PeerID || strings.Join(info.Roles, ",") != "publisher,coordinator" || info.ICPPrincipal == "" {
		t.Errorf("node info --json = %+v, want peer %s, roles publisher,coordinator and a principal", info, nodes[0].Info().PeerID)
	}
	if out := cli(t, false, "--datadir", dd, "node", "connect", nodes[1].P2PAddr()); !strings.Contains(out, nodes[1].Info().PeerID) {
		t.Errorf("node connect printed %q, want the peer ID", out)
	}
	var peers []adminrpc.Peer
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", dd, "--json", "node", "peers")), &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].PeerID != nodes[1].Info().PeerID {
		t.Errorf("node peers = %+v, want just %s", peers, nodes[1].Info().PeerID)
	}
	if out := cli(t, true, "--datadir", dd, "node", "connect", "/ip4/127.0.0.1/tcp/1"); !strings.Contains(out, "/p2p/") {
		t.Errorf("node connect without /p2p/ printed %q, want a hint about /p2p/<peer ID>", out)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+nodes[0].RPCAddr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+readToken(t, dd))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(metrics), "califusion_rpc_calls_total") || !strings.Contains(string(metrics), "libp2p_") {
		t.Errorf("GET /metrics = %d, want 200 with califusion and libp2p metrics:\n%.500s", resp.StatusCode, metrics)
	}
	if out := cli(t, false, "--datadir", dd, "config", "show"); !strings.Contains(out, "roles = ['publisher', 'coordinator']") {
		t.Errorf("config show printed:\n%s\nwant the datadir's roles", out)
	}
	// model publish → model fetch (waits for the job) → model ls, all through the CLI.
	path, _ := writeRandom(t, 3<<20)
	var pub adminrpc.PublishResult
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", dd, "--json", "model", "publish", path, "--price", "5", "--chunk-size", "1048576")), &pub); err != nil {
		t.Fatal(err)
	}
	other := nodes[1].Datadir
	waitFor(t, 30*time.Second, func() error { _, err := nodes[1].Client().ModelGet(t.Context(), pub.ModelID); return err })
	var st adminrpc.JobStatus
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", other, "--json", "model", "fetch", pub.ModelID)), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "done" || st.BytesDone != st.BytesTotal || st.BytesTotal != 3<<20+3*16 {
		t.Errorf("model fetch --json = %+v, want done with all %d ciphertext bytes", st, 3<<20+3*16)
	}
	if out := cli(t, false, "--datadir", other, "model", "ls"); !strings.Contains(out, pub.ModelID) || !strings.Contains(out, "3/3") {
		t.Errorf("model ls printed:\n%s\nwant the model with 3/3 local chunks", out)
	}
	if out := cli(t, true, "--datadir", other, "model", "export", pub.ModelID, filepath.Join(t.TempDir(), "x")); !strings.Contains(out, "not unlocked") {
		t.Errorf("model export without the key printed %q, want a not-unlocked sentence", out)
	}
	if out := cli(t, true, "--datadir", dd, "init"); !strings.Contains(out, "refusing to overwrite") {
		t.Errorf("init on an initialised datadir printed %q, want a refusal", out)
	}
	if out := cli(t, true, "--datadir", t.TempDir(), "node", "info"); !strings.Contains(out, "no daemon is serving") {
		t.Errorf("node info without a daemon printed %q, want a clear sentence", out)
	}
}

func readToken(t *testing.T, datadir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(datadir, adminrpc.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestDevnetJSON runs the whole story on its defaults (a publisher, 3 coordinators holding 2-of-3
// key shares, 4 trainers, 10 secure rounds) and checks the report: everyone discovered everyone,
// every trainer paid and exported the exact bytes; the first coordinator is killed after round 1
// and the other rounds run on the second; round 3 loses a trainer after it sent its key shares
// and completes with the other three; every secure round's new version is the plain FedAvg of
// its contributors' updates within the quantisation bound; the final version scores within 3
// points of the same trainer run centrally and every trainer received it without paying again.
// Afterwards no coordinator's datadir or log holds a whole key or any trainer's update.
func TestDevnetJSON(t *testing.T) {
	dir := t.TempDir()
	out := cli(t, false, "devnet", "--dir", dir, "--json")
	var rep devnet.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("devnet --json output is not a report: %v\n%s", err, out)
	}
	if len(rep.Nodes) != 8 {
		t.Fatalf("devnet report has %d nodes, want 8", len(rep.Nodes))
	}
	for _, n := range rep.Nodes {
		switch {
		case n.Name == "coordinator1":
			if !n.Stopped {
				t.Errorf("coordinator1 = %+v, want it reported stopped (the story kills it)", n)
			}
		case n.Peers != 6 || n.Known < 6:
			t.Errorf("devnet node %s: peers %d, known %d, want the 6 other live nodes", n.Name, n.Peers, n.Known)
		}
	}
	if rep.Model == nil || len(rep.Model.Fetches) != 4 || !rep.Model.Anchored || rep.Model.AnchorVerifiedBy != 4 {
		t.Fatalf("devnet report model = %+v, want the initial model anchored, fetched and verified by every trainer", rep.Model)
	}
	for _, f := range rep.Model.Fetches {
		if !f.ExportOK || f.Paid != devnet.DemoPrice {
			t.Errorf("devnet trainer %s: paid %s, export ok %v; want the price paid and the exact bytes exported", f.Node, f.Paid, f.ExportOK)
		}
	}
	tr := rep.Training
	if tr == nil || len(tr.Rounds) != 10 {
		t.Fatalf("devnet training report = %+v, want 10 rounds", tr)
	}
	if tr.KilledCoordinator != "coordinator1" {
		t.Errorf("killed coordinator %q, want coordinator1", tr.KilledCoordinator)
	}
	all := uint64(tr.ShardRows[0] + tr.ShardRows[1] + tr.ShardRows[2] + tr.ShardRows[3])
	for _, r := range tr.Rounds {
		wantCoord, wantUpdates, wantSamples, wantDropouts := "coordinator2", 4, all, []string(nil)
		if r.Round == 1 {
			wantCoord = "coordinator1"
		}
		if r.Round == 3 {
			wantUpdates, wantSamples, wantDropouts = 3, all-uint64(tr.ShardRows[3]), []string{"trainer4"}
		}
		if !r.Secure || r.Coordinator != wantCoord || r.Updates != wantUpdates || len(r.Contributors) != wantUpdates || r.Samples != wantSamples ||
			strings.Join(r.Dropouts, ",") != strings.Join(wantDropouts, ",") || r.Anchors < wantUpdates+2 || r.NewModel == "" {
			t.Errorf("round %d = %+v, want secure on %s, %d contributors over %d samples, dropouts %v, an anchor per masked input, the version and the aggregate, a new model",
				r.Round, r, wantCoord, wantUpdates, wantSamples, wantDropouts)
		}
		if r.FedAvgBound <= 0 || r.FedAvgGap > r.FedAvgBound {
			t.Errorf("round %d: the secure aggregate is %.3g from the plain FedAvg of the same updates, bound %.3g", r.Round, r.FedAvgGap, r.FedAvgBound)
		}
	}
	last := tr.Rounds[len(tr.Rounds)-1]
	if last.NewModel != tr.FinalModel || math.Abs(last.Accuracy-tr.FinalAccuracy) > 1e-9 {
		t.Errorf("final model %s scored %.4f by the devnet, but the last round reports %s scoring %.4f", tr.FinalModel, tr.FinalAccuracy, last.NewModel, last.Accuracy)
	}
	t.Logf("final held-out accuracy %.3f, central %.3f", tr.FinalAccuracy, tr.CentralAccuracy)
	if tr.CentralAccuracy < 0.9 || tr.FinalAccuracy < tr.CentralAccuracy-0.03 {
		t.Errorf("final accuracy %.3f is more than 3 points below the central baseline %.3f", tr.FinalAccuracy, tr.CentralAccuracy)
	}
	if tr.ReleasedTo != 4 {
		t.Errorf("the final version was released to %d of 4 trainers", tr.ReleasedTo)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "devnet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f devnet.File
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Nodes) != 8 || f.Nodes[0].Name != "publisher" || f.Nodes[0].PeerID == "" || f.Nodes[0].RPCAddr == "" || f.Calimero == nil || f.Calimero.ContextID == "" {
		t.Errorf("devnet.json = %+v, want eight nodes, the publisher first, with peer IDs and RPC addresses", f)
	}
	checkDevnetAdditions(t, &rep, &f, 4)
	checkDevnetMetrics(t, &rep, 4)
	checkDevnetCampaign(t, &rep, 4)
	auditDevnet(t, dir, &rep)
}

// TestDevnetKeep: with --keep the devnet stays up after its story, its nodes answer the CLI, and
// SIGINT stops everything cleanly.
func TestDevnetKeep(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(bin, "devnet", "--dir", dir, "--trainers", "1", "--keep")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	waitFor(t, 2*time.Minute, func() error {
		if !strings.Contains(stderr.String(), "Ctrl-C stops") {
			return errf("devnet not up yet:\n%s", stderr.String())
		}
		return nil
	})
	var info adminrpc.NodeInfo
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", filepath.Join(dir, "trainer1"), "--json", "node", "info")), &info); err != nil || info.PeerID == "" {
		t.Fatalf("node info on a kept devnet node = %+v, %v", info, err)
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("devnet exited with %v after SIGINT, want 0\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("devnet did not stop within 60s of SIGINT")
	}
	if _, err := os.Stat(filepath.Join(dir, "trainer1", adminrpc.AddrFile)); !os.IsNotExist(err) {
		t.Errorf("trainer1's rpc.addr still exists after the devnet stopped (err %v)", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
