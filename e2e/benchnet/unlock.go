package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
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

// runUnlock times model_unlock on trainers of two lineages of the devnet model published by one
// publisher: one escrowed 2-of-3 across three coordinators (the trainer collects two shares),
// one escrowed whole with the first coordinator alone. Each trainer unlocks both, in turns
// (even trainers the threshold lineage first, odd ones the other), each unlock paying for its
// lineage. Then the third coordinator is killed and as many fresh trainers do the same (the
// threshold lineage still has two shares reachable). (A second, already-paid claim of a later version is not measured: round_open on a
// threshold lineage needs the whole key on the coordinator, node/rounds/rounds.go Open.)
func runUnlock(trainers int) error {
	trainers = max(2, trainers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, bin, err := workdir(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	replica, err := icptest.New(icptest.Options{})
	if err != nil {
		return err
	}
	if err := replica.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer replica.Close()
	h := harness.New(bin, dir)
	h.RunArgs = tcpOnlyArgs
	defer h.StopAll()
	pub, err := h.Init(ctx, "pub", []string{"publisher"})
	if err != nil {
		return err
	}
	var coords, trs []*harness.Node
	for i := range 3 {
		n, err := h.Init(ctx, fmt.Sprintf("coord%d", i), []string{"coordinator"})
		if err != nil {
			return err
		}
		coords = append(coords, n)
	}
	for i := range 2 * trainers {
		n, err := h.Init(ctx, fmt.Sprintf("tr%d", i), []string{"trainer"})
		if err != nil {
			return err
		}
		trs = append(trs, n)
	}
	all := append(append([]*harness.Node{pub}, coords...), trs...)
	for _, n := range all {
		if err := n.EditConfig(func(c *config.Config) {
			c.ICP = config.ICP{ReplicaURL: replica.URL(), LedgerCanisterID: icptest.LedgerID, FetchRootKey: true}
		}); err != nil {
			return err
		}
	}
	if err := coords[0].Start(ctx); err != nil {
		return err
	}
	for _, n := range all {
		if n == coords[0] {
			continue
		}
		if err := n.Start(ctx, "--bootstrap", coords[0].P2PAddr()); err != nil {
			return err
		}
	}
	for _, n := range trs {
		replica.Mint(principal.MustDecode(n.Info().ICPPrincipal), 10_000_000)
	}
	for _, co := range coords {
		others := slices.DeleteFunc(slices.Clone(all), func(n *harness.Node) bool { return n == co })
		if err := waitHeard(ctx, co, others); err != nil {
			return err
		}
	}
	raw, err := fl.NewLogReg(devnet.DigitsFeatures, devnet.DigitsClasses).Encode()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return err
	}
	var ids []string
	for _, co := range coords {
		ids = append(ids, co.Info().PeerID)
	}
	split, err := pub.Client().ModelPublish(ctx, adminrpc.PublishParams{Path: path, Name: "split", Price: "1000", Coordinators: ids, Threshold: 2})
	if err != nil {
		return err
	}
	whole, err := pub.Client().ModelPublish(ctx, adminrpc.PublishParams{Path: path, Name: "whole", Price: "1000", Coordinators: ids[:1]})
	if err != nil {
		return err
	}
	if split.Escrowed != 3 || split.Threshold != 2 || whole.Escrowed != 1 {
		return fmt.Errorf("publish: threshold lineage %+v, whole-key lineage %+v", split, whole)
	}

	allSplit, allWhole, err := timeUnlocks(ctx, trs[:trainers], split.ModelID, whole.ModelID)
	if err != nil {
		return err
	}
	// The third coordinator goes down: the others still hold two shares (and the whole key).
	if err := coords[2].Kill(); err != nil {
		return err
	}
	downSplit, downWhole, err := timeUnlocks(ctx, trs[trainers:], split.ModelID, whole.ModelID)
	if err != nil {
		return fmt.Errorf("with a coordinator down: %w", err)
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "model_unlock, payment included\ttrainers\t2-of-3 shares (median, min–max)\tone coordinator, whole key\tratio (median of per-trainer ratios)\t\n")
	row := func(what string, a, b []float64) {
		r := make([]float64, len(a))
		for i := range a {
			r[i] = a[i] / b[i]
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f ms (%.0f–%.0f)\t%.0f ms (%.0f–%.0f)\t%.2f×\t\n", what, len(a), 1000*mid(a), 1000*slices.Min(a), 1000*slices.Max(a), 1000*mid(b), 1000*slices.Min(b), 1000*slices.Max(b), mid(r))
	}
	row("3 coordinators up", allSplit, allWhole)
	row("the third coordinator killed", downSplit, downWhole)
	return tw.Flush()
}

// timeUnlocks has each trainer fetch both models (untimed), then times its model_unlock of
// each, the two in alternating order from one trainer to the next. Trainers go one at a time.
func timeUnlocks(ctx context.Context, trs []*harness.Node, a, b string) (ta, tb []float64, err error) {
	var g errgroup.Group
	g.SetLimit(4)
	for _, tr := range trs {
		for _, id := range []string{a, b} {
			g.Go(func() error {
				_, err := fetchModel(ctx, tr, id)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	for i, tr := range trs {
		order := []string{a, b}
		if i%2 == 1 {
			order = []string{b, a}
		}
		for _, id := range order {
			t0 := time.Now()
			if _, err := tr.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: id}); err != nil {
				return nil, nil, fmt.Errorf("%s: model_unlock %s: %w", tr.Name, id, err)
			}
			secs := time.Since(t0).Seconds()
			if id == a {
				ta = append(ta, secs)
			} else {
				tb = append(tb, secs)
			}
		}
	}
	return ta, tb, nil
}
