package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// runResolve measures, on a count-node loopback network, the time from `model fetch <id>` to the
// fetch job's first bytes on a node that has never heard of the ID (it joins the network after
// the model was published and is asked to fetch it as soon as it serves RPC, so the ID must be
// resolved from the network, or caught by the catalog sync it runs on connecting), against the
// same fetch on a node of the network whose catalog already has the model. Trials alternate
// between the two kinds, each fetch alone on the network, and the table gives their ratio.
func runResolve(count, trials, sizeMiB int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, bin, err := workdir(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h := harness.New(bin, dir)
	defer h.StopAll()
	if count < trials+2 {
		return fmt.Errorf("-resolve needs at least %d nodes for %d trials", trials+2, trials)
	}

	// The network: node i bootstraps from node i-1; n00 publishes.
	var nodes []*harness.Node
	for i := 0; i < count; i++ {
		roles := []string{"trainer"}
		if i == 0 {
			roles = []string{"publisher", "coordinator"}
		}
		n, err := h.Init(ctx, fmt.Sprintf("n%02d", i), roles)
		if err != nil {
			return err
		}
		args := []string{}
		if i > 0 {
			args = append(args, "--bootstrap", nodes[i-1].P2PAddr())
		}
		if err := n.Start(ctx, args...); err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	if err := harness.WaitFor(ctx, func() error { return meshed(ctx, nodes) }); err != nil {
		return err
	}
	path := filepath.Join(dir, "model.bin")
	data := make([]byte, sizeMiB<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	pub, err := nodes[0].Client().ModelPublish(ctx, adminrpc.PublishParams{Path: path, Name: "resolve-bench", Price: "1", ChunkSize: 1 << 20})
	if err != nil {
		return err
	}
	// The warm fetchers are the far end of the chain; wait until their catalogs have the model
	// (model_list only reads the catalog: model_get would resolve it).
	warm := nodes[count-trials:]
	if err := harness.WaitFor(ctx, func() error {
		for _, n := range warm {
			list, err := n.Client().ModelList(ctx)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(list, func(m adminrpc.ModelSummary) bool { return m.ModelID == pub.ModelID }) {
				return fmt.Errorf("%s does not list the model yet", n.Name)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// Let the DHT provider records land.
	time.Sleep(2 * time.Second)

	var coldT, warmT, coldRPC, warmRPC, joinT []time.Duration
	sources := map[string]int{}
	for i := 0; i < trials; i++ {
		rpc, d, err := firstBytes(ctx, warm[i], pub.ModelID)
		if err != nil {
			return fmt.Errorf("warm fetch on %s: %w", warm[i].Name, err)
		}
		warmT, warmRPC = append(warmT, d), append(warmRPC, rpc)

		cold, err := h.Init(ctx, fmt.Sprintf("cold%d", i), []string{"trainer"})
		if err != nil {
			return err
		}
		t0 := time.Now()
		// It bootstraps from a node in the middle of the chain, not from the publisher.
		if err := cold.Start(ctx, "--bootstrap", nodes[count/2+i%(count/2-trials)].P2PAddr()); err != nil {
			return err
		}
		joinT = append(joinT, time.Since(t0))
		if rpc, d, err = firstBytes(ctx, cold, pub.ModelID); err != nil {
			return fmt.Errorf("cold fetch on %s: %w", cold.Name, err)
		}
		coldT, coldRPC = append(coldT, d), append(coldRPC, rpc)
		src, _ := logSource(cold.LogPath(), pub.ModelID)
		sources[src]++
		if err := cold.Stop(); err != nil {
			return err
		}
	}

	fmt.Printf("model fetch to first bytes, %d-node loopback network, %d MiB model in 1 MiB chunks, %d trials of each, alternating:\n", count, sizeMiB, trials)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "fetching node\tmodel_fetch answered (lookup/resolve), median\tfirst bytes: median\tmin\tmax\tmedian / warm median")
	wm := medianDur(warmT)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond / 10) }
	row := func(name string, rpc, ds []time.Duration) {
		fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t%v\t%.2f\n", name, r(medianDur(rpc)), r(medianDur(ds)), r(slices.Min(ds)), r(slices.Max(ds)), float64(medianDur(ds))/float64(wm))
	}
	row("catalog has the model (warm)", warmRPC, warmT)
	row("never heard of the ID (cold)", coldRPC, coldT)
	tw.Flush()
	fmt.Printf("cold node start to RPC ready (before its fetch): median %v; how the cold nodes learnt the manifest: %v\n", medianDur(joinT).Round(time.Millisecond), sources)
	return nil
}

// firstBytes calls model_fetch on n and returns the time until it answered (the catalog lookup,
// or the resolve) and until its job reports bytes done (the first verified chunk), then waits for
// the job to finish.
func firstBytes(ctx context.Context, n *harness.Node, id string) (answered, first time.Duration, err error) {
	t0 := time.Now()
	job, err := n.Client().ModelFetch(ctx, id)
	if err != nil {
		return 0, 0, err
	}
	answered = time.Since(t0)
	// Polled every 2 ms (harness.WaitFor's 50 ms would be the resolution of the figure).
	for {
		st, err := n.Client().JobStatus(ctx, job.JobID)
		if err != nil {
			return 0, 0, err
		}
		if first == 0 && st.BytesDone > 0 {
			first = time.Since(t0)
		}
		switch st.State {
		case "done":
			return answered, first, nil
		case "failed":
			return 0, 0, fmt.Errorf("job failed: %s", st.Error)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

var sourceLine = regexp.MustCompile(`msg="model added to catalog".* model=([0-9a-f]{64}).* source=(\S+)`)

// logSource returns how a node's log says the model entered its catalog (resolve, catalog, gossip).
func logSource(path, id string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, m := range sourceLine.FindAllStringSubmatch(string(b), -1) {
		if m[1] == id {
			return m[2], nil
		}
	}
	return "?", nil
}

func medianDur(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
