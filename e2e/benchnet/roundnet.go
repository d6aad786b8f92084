package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"golang.org/x/sync/errgroup"
)

// tcpOnlyArgs make the daemons listen on loopback TCP only, so that every libp2p byte goes
// through a TCP socket the byte counter (netcount.go) can read.
var tcpOnlyArgs = []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--rpc-addr", "127.0.0.1:0"}

// roundNet is a publisher+coordinator and trainers that all paid for and unlocked one model.
type roundNet struct {
	h        *harness.Harness
	replica  *icptest.Sim
	coord    *harness.Node
	trainers []*harness.Node
	model    string
	dim      int // the model's coordinates
	inbound  *p2pInbound
	rounds   int // rounds measured, for the profiles' names
}

// close stops the daemons and the ledger emulator.
func (rn *roundNet) close() {
	rn.h.StopAll()
	rn.replica.Close()
}

// startRoundNet starts a coordinator (also the publisher) and trainers under dir. sizeMiB 0 is
// the devnet model (digits logistic regression, built-in trainer on node/devnet's shards), else
// a model of about sizeMiB MiB of F32 whose trainers run this program's -perturb hook.
func startRoundNet(ctx context.Context, bin, dir string, trainers, sizeMiB int) (*roundNet, error) {
	replica, err := icptest.New(icptest.Options{})
	if err != nil {
		return nil, err
	}
	if err := replica.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	rn := &roundNet{h: harness.New(bin, dir), replica: replica}
	rn.h.RunArgs = tcpOnlyArgs
	ok := false
	defer func() {
		if !ok {
			rn.close()
		}
	}()
	if rn.coord, err = rn.h.Init(ctx, "coord", []string{"publisher", "coordinator"}); err != nil {
		return nil, err
	}
	for i := range trainers {
		n, err := rn.h.Init(ctx, fmt.Sprintf("tr%d", i), []string{"trainer"})
		if err != nil {
			return nil, err
		}
		rn.trainers = append(rn.trainers, n)
	}
	all := append([]*harness.Node{rn.coord}, rn.trainers...)
	for _, n := range all {
		if err := n.EditConfig(func(c *config.Config) {
			c.ICP = config.ICP{ReplicaURL: replica.URL(), LedgerCanisterID: icptest.LedgerID, FetchRootKey: true}
		}); err != nil {
			return nil, err
		}
	}
	var model []byte
	if sizeMiB == 0 {
		if err := digitsTrainers(rn.trainers); err != nil {
			return nil, err
		}
		base := fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses)
		rn.dim = (devnet.DigitsFeatures + 1) * devnet.DigitsClasses
		if model, err = base.Encode(); err != nil {
			return nil, err
		}
	} else {
		if err := perturbTrainers(rn.trainers); err != nil {
			return nil, err
		}
		rn.dim = sizeMiB << 20 / 4
		if model, err = largeModel(sizeMiB); err != nil {
			return nil, err
		}
	}
	if err := rn.coord.Start(ctx); err != nil {
		return nil, err
	}
	for _, n := range rn.trainers {
		if err := n.Start(ctx, "--bootstrap", rn.coord.P2PAddr()); err != nil {
			return nil, err
		}
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 10_000_000)
	}
	if err := waitHeard(ctx, rn.coord, rn.trainers); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(path, model, 0o600); err != nil {
		return nil, err
	}
	res, err := rn.coord.Client().ModelPublish(ctx, adminrpc.PublishParams{Path: path, Name: "bench", Price: "1000", Coordinators: []string{rn.coord.Info().PeerID}})
	if err != nil {
		return nil, err
	}
	rn.model = res.ModelID
	var g errgroup.Group
	g.SetLimit(4)
	for _, tr := range rn.trainers {
		g.Go(func() error {
			if _, err := fetchModel(ctx, tr, rn.model); err != nil {
				return fmt.Errorf("%s: fetch: %w", tr.Name, err)
			}
			if _, err := tr.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: rn.model}); err != nil {
				return fmt.Errorf("%s: unlock: %w", tr.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if rn.inbound, err = newP2PInbound(rn.coord, rn.trainers); err != nil {
		return nil, err
	}
	ok = true
	return rn, nil
}

// digitsTrainers gives each trainer a digits shard dealt as node/devnet deals them and the
// devnet's built-in trainer settings.
func digitsTrainers(trainers []*harness.Node) error {
	all, err := devnet.LoadDigits()
	if err != nil {
		return err
	}
	train, _ := all.Split(devnet.DataSeed, devnet.TestFraction)
	shards := train.Shards(len(trainers), devnet.DataSeed, devnet.LabelSkew)
	for i, tr := range trainers {
		path := filepath.Join(tr.Datadir, "shard.csv")
		if err := devnet.WriteCSV(path, shards[i]); err != nil {
			return err
		}
		if err := tr.EditConfig(func(c *config.Config) {
			c.Train.Data, c.Train.Hook = path, config.HookBuiltin
			c.Train.Epochs, c.Train.BatchSize, c.Train.LearningRate = devnet.LocalEpochs, devnet.BatchSize, devnet.LearningRate
		}); err != nil {
			return err
		}
	}
	return nil
}

// perturbTrainers makes each trainer's hook this program's -perturb.
func perturbTrainers(trainers []*harness.Node) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, tr := range trainers {
		data := filepath.Join(tr.Datadir, "unused-data")
		if err := os.WriteFile(data, nil, 0o600); err != nil {
			return err
		}
		if err := tr.EditConfig(func(c *config.Config) {
			c.Train.Data, c.Train.Hook, c.Train.Command = data, config.HookExec, []string{self, "-perturb", "{model}", "{out}"}
		}); err != nil {
			return err
		}
	}
	return nil
}

// waitHeard waits until every node lists peer's signed presence in its directory.
func waitHeard(ctx context.Context, peer *harness.Node, nodes []*harness.Node) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	id := peer.Info().PeerID
	return harness.WaitFor(wctx, func() error {
		for _, n := range nodes {
			dir, err := n.Client().NodeDirectory(wctx)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(dir, func(e adminrpc.DirectoryEntry) bool { return e.PeerID == id }) {
				return fmt.Errorf("%s has not heard %s yet", n.Name, peer.Name)
			}
		}
		return nil
	})
}

// roundFigures are one round's measurements on the coordinator.
type roundFigures struct {
	secs, cpu   float64 // round_open → done; the coordinator's CPU seconds meanwhile
	inBytes     int64   // the coordinator's libp2p bytes received from the trainers meanwhile
	closedConns int     // coordinator connections that closed during the round (inBytes a lower bound)
	peakRSS     int64   // the coordinator's peak RSS during the round
}

// measureRound opens a round on the net's model for every trainer (secure with clip, or plain
// FedAvg), has all trainers train and submit at once, and waits for the round to be done on the
// coordinator.
func (rn *roundNet) measureRound(ctx context.Context, secure bool, clip float64) (roundFigures, error) {
	var f roundFigures
	pid := rn.coord.PID()
	if err := resetPeakRSS(pid); err != nil {
		return f, err
	}
	snap, err := rn.inbound.snapshot(ctx)
	if err != nil {
		return f, err
	}
	cpu0, err := procCPU(pid)
	if err != nil {
		return f, err
	}
	mode := map[bool]string{true: "secure", false: "plain"}[secure]
	profiled := profileCPU(ctx, fmt.Sprintf("round-%d-%d-%02d-%s", rn.dim, len(rn.trainers), rn.rounds+1, mode), 8*time.Second, map[string]*harness.Node{"coord": rn.coord})
	t0 := time.Now()
	p := adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: len(rn.trainers), Deadline: "10m", Rule: fl.RuleFedAvg}
	if secure {
		p.Secure, p.Clip = true, clip
	}
	open, err := rn.coord.Client().RoundOpen(ctx, p)
	if err != nil {
		return f, fmt.Errorf("round_open: %w", err)
	}
	var g errgroup.Group
	for _, tr := range rn.trainers {
		g.Go(func() error {
			var res adminrpc.TrainRunResult
			// A trainer may not have heard the round's announcement yet.
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := harness.WaitFor(wctx, func() error {
				var err error
				res, err = tr.Client().TrainRun(wctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
				return err
			}); err != nil {
				return fmt.Errorf("%s: train_run: %w", tr.Name, err)
			}
			sub, err := tr.Client().UpdateSubmit(ctx, open.RoundID, res.UpdateID)
			if err != nil || !sub.Accepted || sub.Secure != secure {
				return fmt.Errorf("%s: update_submit = %+v, %v", tr.Name, sub, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return f, err
	}
	for {
		rs, err := rn.coord.Client().RoundList(ctx, rn.model)
		if err != nil {
			return f, err
		}
		i := slices.IndexFunc(rs, func(r adminrpc.RoundInfo) bool { return r.RoundID == open.RoundID })
		if i >= 0 && rs[i].State == "done" {
			break
		}
		if i >= 0 && rs[i].State == "failed" {
			return f, fmt.Errorf("round %s failed: %s", open.RoundID, rs[i].Error)
		}
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	f.secs = time.Since(t0).Seconds()
	cpu1, err := procCPU(pid)
	if err != nil {
		return f, err
	}
	f.cpu = cpu1 - cpu0
	if f.inBytes, f.closedConns, err = rn.inbound.since(ctx, snap); err != nil {
		return f, err
	}
	if f.peakRSS, err = peakRSS(rn.coord); err != nil {
		return f, err
	}
	if err := profiled(); err != nil {
		return f, err
	}
	if profileDir != "" {
		rn.rounds++
		err = fetchAllocs(ctx, rn.coord, filepath.Join(profileDir, fmt.Sprintf("allocs-%d-%d-%02d-%s.pprof", rn.dim, len(rn.trainers), rn.rounds, mode)))
	}
	return f, err
}

// fetchAllocs saves n's allocation profile (cumulative since it started: compare consecutive
// ones with `go tool pprof -sample_index=alloc_space -base`).
func fetchAllocs(ctx context.Context, n *harness.Node, path string) error {
	token, err := os.ReadFile(filepath.Join(n.Datadir, "rpc.token"))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.RPCAddr()+"/debug/pprof/allocs", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("allocs profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// idleCPU is the coordinator's CPU rate (seconds per second) over d with no round running:
// gossip, presence and the benchmark's own polling, the floor under every round's figure.
func (rn *roundNet) idleCPU(d time.Duration) (float64, error) {
	c0, err := procCPU(rn.coord.PID())
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	c1, err := procCPU(rn.coord.PID())
	return (c1 - c0) / d.Seconds(), err
}
