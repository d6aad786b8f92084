// Command benchnet measures califusiond as a process: time from `run` to serving RPC, idle memory
// of one daemon and of each daemon in a 10-node network, and the time that network takes to
// discover itself. It prints a table; BENCHMARKS.md records its output.
//
//	go run ./e2e/benchnet [-nodes 10] [-settle 5s]     # daemon start, memory, discovery
//	go run ./e2e/benchnet -transfer [-size 1024]      # model transfer against raw libp2p streams
//	go run ./e2e/benchnet -announce [-nodes 30]       # announcement propagation at 50/s
//	go run ./e2e/benchnet -resolve -nodes 30          # fetch of an unknown model ID against a known one
//	go run ./e2e/benchnet -secure [-trainers 10] [-size 10]  # secure vs plain rounds
//	go run ./e2e/benchnet -growth [-size 10]          # secure rounds of 5, 10, 20 trainers
//	go run ./e2e/benchnet -unlock [-trials 5]         # unlock with t-of-n shares vs one coordinator
//
// -announce publishes round-robin from every node of the network, so that each author stays
// within the per-author gossip limit (node/catalog: 32 at once, then 1/s), as many real
// publishers would; one author at 50/s would be held to that limit and the run would measure
// catalog sync instead of gossip.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/califusion/califusion/e2e/harness"
)

func main() {
	nodes := flag.Int("nodes", 10, "nodes in the network measurement")
	settle := flag.Duration("settle", 5*time.Second, "idle time before memory is read")
	transfer := flag.Bool("transfer", false, "measure model transfer instead")
	sizeMiB := flag.Int("size", 1024, "model size for -transfer, in MiB")
	runs := flag.Int("runs", 1, "-transfer: measure each transport this many times and report medians")
	ann := flag.Bool("announce", false, "measure announcement propagation instead (models published round-robin from every node, each author within the per-author gossip limit)")
	rate := flag.Int("rate", 50, "announcements per second for -announce, all nodes together")
	dur := flag.Duration("duration", 5*time.Second, "how long -announce publishes")
	res := flag.Bool("resolve", false, "measure model fetch to first bytes on a node that never heard of the ID against one whose catalog has it")
	trials := flag.Int("trials", 5, "-resolve: fetches of each kind")
	rawSink := flag.String("raw-sink", "", "internal: receive one raw stream on this transport (the two-process baseline of -transfer)")
	secure := flag.Bool("secure", false, "measure secure (SecAgg+) against plain rounds on the devnet model and a -size MiB model (default 10)")
	trainersN := flag.Int("trainers", 10, "-secure: trainers in the round")
	reps := flag.Int("reps", 2, "-secure, -growth: pairs of rounds (plain and secure) per network")
	growth := flag.Bool("growth", false, "measure secure rounds of 5, 10 and 20 trainers on the devnet model (and on a -size MiB model when -size is given)")
	unlock := flag.Bool("unlock", false, "measure model_unlock of a 2-of-3 threshold lineage against a one-coordinator lineage")
	perturb := flag.Bool("perturb", false, "internal: the large-model rounds' exec training hook (args: model, update path)")
	flag.StringVar(&profileDir, "cpuprofile", "", "write CPU profiles of the daemons during the measured phase into this folder (-secure, -growth: the coordinator's CPU for 8 s from round_open and its allocations after each round)")
	flag.Parse()
	var err error
	sizeSet := false
	flag.Visit(func(f *flag.Flag) { sizeSet = sizeSet || f.Name == "size" })
	switch {
	case *perturb:
		err = runPerturb(flag.Args())
	case *secure:
		err = runSecure(*trainersN, map[bool]int{true: *sizeMiB, false: 10}[sizeSet], max(1, *reps))
	case *growth:
		err = runGrowth([]int{5, 10, 20}, map[bool]int{true: *sizeMiB, false: 0}[sizeSet], max(1, *reps))
	case *unlock:
		err = runUnlock(*trials)
	case *rawSink != "":
		err = runRawSink(*rawSink)
	case *transfer:
		err = runTransfer(*sizeMiB, max(1, *runs))
	case *res:
		err = runResolve(*nodes, max(1, *trials), 8)
	case *ann:
		err = runAnnounce(*nodes, *rate, *dur)
	default:
		err = run(*nodes, *settle)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchnet:", err)
		os.Exit(1)
	}
}

// workdir makes a temporary folder and builds califusiond into it.
func workdir(ctx context.Context) (dir, bin string, err error) {
	if dir, err = os.MkdirTemp("", "califusion-benchnet-"); err != nil {
		return "", "", err
	}
	if bin, err = harness.Build(ctx, ".", dir); err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	return dir, bin, nil
}

func run(count int, settle time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, bin, err := workdir(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h := harness.New(bin, dir)
	defer h.StopAll()

	// One daemon: start-to-RPC over 5 starts, then idle RSS.
	solo, err := h.Init(ctx, "solo", nil)
	if err != nil {
		return err
	}
	var starts []time.Duration
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		if err := solo.Start(ctx); err != nil {
			return err
		}
		starts = append(starts, time.Since(t0))
		if i < 4 {
			if err := solo.Stop(); err != nil {
				return err
			}
		}
	}
	time.Sleep(settle)
	soloRSS, err := solo.RSS()
	if err != nil {
		return err
	}
	if err := solo.Stop(); err != nil {
		return err
	}

	// A network: node i bootstraps from node i-1 only; wait until every node is connected to
	// and has heard the presence of every other.
	var net []*harness.Node
	for i := 0; i < count; i++ {
		n, err := h.Init(ctx, fmt.Sprintf("n%d", i), nil)
		if err != nil {
			return err
		}
		net = append(net, n)
	}
	if err := net[0].Start(ctx); err != nil {
		return err
	}
	t0 := time.Now()
	for i := 1; i < count; i++ {
		if err := net[i].Start(ctx, "--bootstrap", net[i-1].P2PAddr()); err != nil {
			return err
		}
	}
	upAt := time.Since(t0)
	if err := harness.WaitFor(ctx, func() error { return meshed(ctx, net) }); err != nil {
		return err
	}
	discovered := time.Since(t0)
	time.Sleep(settle)
	var rss []int64
	for _, n := range net {
		r, err := n.RSS()
		if err != nil {
			return err
		}
		rss = append(rss, r)
	}
	slices.Sort(rss)
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })

	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measurement\tvalue\tgoal")
	fmt.Fprintf(tw, "run → serving RPC (median of 5)\t%v\t\n", starts[2].Round(time.Millisecond))
	fmt.Fprintf(tw, "idle RSS, one daemon\t%s\t≤ 60 MiB\n", mib(soloRSS))
	fmt.Fprintf(tw, "idle RSS per daemon, %d-node network (min / median / max)\t%s / %s / %s\t≤ 60 MiB\n", count, mib(rss[0]), mib(rss[len(rss)/2]), mib(rss[len(rss)-1]))
	fmt.Fprintf(tw, "%d nodes started (chain bootstrap)\t%v\t\n", count, upAt.Round(time.Millisecond))
	fmt.Fprintf(tw, "%d-node network fully discovered (from first start)\t%v\t\n", count, discovered.Round(time.Millisecond))
	fmt.Fprintf(tw, "  of which after the last node was up\t%v\t\n", (discovered - upAt).Round(time.Millisecond))
	return tw.Flush()
}

func meshed(ctx context.Context, nodes []*harness.Node) error {
	for _, n := range nodes {
		peers, err := n.Client().NodePeers(ctx)
		if err != nil {
			return err
		}
		dir, err := n.Client().NodeDirectory(ctx)
		if err != nil {
			return err
		}
		if len(peers) < len(nodes)-1 || len(dir) < len(nodes)-1 {
			return fmt.Errorf("%s: %d peers, %d presences", n.Name, len(peers), len(dir))
		}
	}
	return nil
}
