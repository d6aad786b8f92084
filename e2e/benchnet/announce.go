package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// Per-author gossip limit of a node (node/catalog AnnounceBurst, AnnounceEvery): a node relays
// at most authorBurst model announcements of one author at once, then one a second; the rest
// reach it only through catalog sync.
const (
	authorBurst = 32
	authorEvery = time.Second
)

// runAnnounce publishes models at rate per second for dur, round-robin from every node of a
// count-node network (each node an author at rate/count per second, as real publishers are many:
// one author at the whole rate would be held to the per-author gossip limit and the run would
// measure catalog sync), and measures, from the nodes' own logs, how long each announcement took
// to reach every other node.
func runAnnounce(count, rate int, dur time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, bin, err := workdir(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h := harness.New(bin, dir)
	defer h.StopAll()
	authors, perAuthor, within := planAnnounce(count, rate, dur)
	total := len(authors)
	if !within {
		fmt.Fprintf(os.Stderr, "benchnet: warning: each of the %d authors publishes %d models in %v, beyond the per-author gossip limit (%d at once, then 1 per %v): the excess travels by catalog sync; use more -nodes or a lower -rate\n",
			count, perAuthor, dur, authorBurst, authorEvery)
	}
	var nodes []*harness.Node
	for i := 0; i < count; i++ {
		// Every node publishes, as publisher+coordinator (it escrows keys with itself).
		n, err := h.Init(ctx, fmt.Sprintf("n%02d", i), []string{"publisher", "coordinator"})
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
	time.Sleep(2 * time.Second) // let the gossipsub mesh settle
	idleStart, idleCPU := time.Now(), cpuSeconds(nodes)
	time.Sleep(5 * time.Second)
	idle := (cpuSeconds(nodes) - idleCPU) / time.Since(idleStart).Seconds()

	files := make([]string, total)
	for i := range files {
		files[i] = filepath.Join(dir, fmt.Sprintf("m%04d.bin", i))
		if err := os.WriteFile(files[i], []byte(fmt.Sprintf("model %d", i)), 0o600); err != nil {
			return err
		}
	}
	sent := map[string]time.Time{}
	var mu sync.Mutex
	busyStart, busyCPU := time.Now(), cpuSeconds(nodes)
	profiled := profileCPU(ctx, "announce", dur, nodeSample(nodes))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	var wg sync.WaitGroup
	for i := 0; i < total; i++ {
		<-tick.C
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			at := time.Now()
			res, err := nodes[authors[i]].Client().ModelPublish(ctx, adminrpc.PublishParams{Path: files[i], Name: fmt.Sprintf("m%d", i), Price: "1"})
			if err == nil {
				mu.Lock()
				sent[res.ModelID] = at
				mu.Unlock()
			}
		}(i)
	}
	tick.Stop()
	wg.Wait()
	if err := profiled(); err != nil {
		return err
	}
	window := time.Since(busyStart).Seconds()
	busy := (cpuSeconds(nodes) - busyCPU) / window
	fmt.Printf("CPU of all %d daemons (each publishing up to %d models): idle %.2f cores, while announcing %.2f cores (the machine has %d)\n", count, perAuthor, idle, busy, runtime.NumCPU())
	time.Sleep(5 * time.Second) // stragglers
	// The work each announcement costs the network: all CPU from the first publish until the
	// stragglers are in, less what the idle network would have used meanwhile.
	spent := cpuSeconds(nodes) - busyCPU - idle*time.Since(busyStart).Seconds()
	fmt.Printf("CPU per announcement, all daemons, above idle: %.1f ms\n", 1000*spent/float64(max(1, len(sent))))

	// The clock starts when the author logged "model published" (just before it announces);
	// receipts are the times each other node logged "model added to catalog" (an author never
	// logs its own model so).
	for _, n := range nodes {
		announced, err := logTimes(n.LogPath(), publishedLine)
		if err != nil {
			return err
		}
		for id, at := range announced {
			if _, ok := sent[id]; ok {
				sent[id] = at
			}
		}
	}
	got := map[string][]time.Time{}
	for _, n := range nodes {
		rs, err := logTimes(n.LogPath(), receiptLine)
		if err != nil {
			return err
		}
		for id, at := range rs {
			got[id] = append(got[id], at)
		}
	}
	var lat []time.Duration
	delivered, complete := 0, 0
	for id, at := range sent {
		rs := got[id]
		delivered += len(rs)
		if len(rs) == count-1 {
			complete++
			last := rs[0]
			for _, r := range rs {
				if r.After(last) {
					last = r
				}
			}
			lat = append(lat, last.Sub(at))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))].Round(time.Millisecond)
	}
	fmt.Printf("announcement propagation, %d nodes, %d announces/s round-robin from all of them for %v (%d published):\n", count, rate, dur, len(sent))
	fmt.Printf("  time until every node has it (author's announce → last other node's catalog): p50 %v, p99 %v, max %v (goal p99 ≤ 75 ms)\n", pct(0.5), pct(0.99), pct(1))
	fmt.Printf("  delivery: %d of %d (node, model) pairs = %.2f%%; models reaching all nodes: %d of %d (goal 100%%)\n",
		delivered, len(sent)*(count-1), 100*float64(delivered)/float64(len(sent)*(count-1)), complete, len(sent))
	return nil
}

// planAnnounce returns which node publishes each of the rate×dur models (round-robin over count
// nodes), the most any one node publishes, and whether that stays within the per-author gossip
// limit over dur.
func planAnnounce(count, rate int, dur time.Duration) (authors []int, perAuthor int, within bool) {
	authors = make([]int, int(dur.Seconds())*rate)
	per := make([]int, count)
	for i := range authors {
		authors[i] = i % count
		per[authors[i]]++
	}
	perAuthor = slices.Max(append(per, 0))
	return authors, perAuthor, perAuthor <= authorBurst+int(dur/authorEvery)
}

// nodeSample names every third node, whose profiles together show where a node's CPU goes
// (one daemon's few samples are too few).
func nodeSample(nodes []*harness.Node) map[string]*harness.Node {
	out := map[string]*harness.Node{}
	for i := 0; i < len(nodes); i += 3 {
		out[fmt.Sprintf("node%02d", i)] = nodes[i]
	}
	return out
}

var (
	receiptLine   = regexp.MustCompile(`^time=(\S+) .*msg="model added to catalog".* model=([0-9a-f]{64})`)
	publishedLine = regexp.MustCompile(`^time=(\S+) .*msg="model published".* model=([0-9a-f]{64})`)
)

// logTimes returns, per model, the time of the first log line matching re.
func logTimes(path string, re *regexp.Regexp) (map[string]time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if _, seen := out[m[2]]; err == nil && !seen {
			out[m[2]] = at
		}
	}
	return out, sc.Err()
}

// cpuSeconds sums the user and system CPU time of the nodes' processes.
func cpuSeconds(nodes []*harness.Node) float64 {
	var ticks int64
	for _, n := range nodes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.PID()))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): utime is the 14th field.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return float64(ticks) / 100 // USER_HZ
}
