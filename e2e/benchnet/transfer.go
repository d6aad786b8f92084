package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/store/blob"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// transport is one way two nodes can talk.
type transport struct {
	name     string
	listen   string
	security string // tls | noise (ignored for QUIC, which brings its own TLS)
}

var transports = []transport{
	{"TCP+TLS", "/ip4/127.0.0.1/tcp/0", "tls"},
	{"TCP+Noise", "/ip4/127.0.0.1/tcp/0", "noise"},
	{"QUIC", "/ip4/127.0.0.1/udp/0/quic-v1", "tls"},
}

// runTransfer measures, per transport, a plain libp2p stream against a califusiond fetch of a
// model of the same size (runs times, taking turns, reporting medians), then one fetcher from
// three seeders against one seeder, and the peak RSS of the fetching daemon.
func runTransfer(sizeMiB, runs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	dir, bin, err := workdir(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	size := int64(sizeMiB) << 20
	model := filepath.Join(dir, "model.bin")
	if err := writeRandomFile(model, size); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "transport (median of %d)\traw stream, one process\traw stream, two processes\tdisk write\tcalifusiond fetch (1 seeder)\tratio (one / two / min(two, disk))\tgoal\n", runs)
	for _, tr := range transports {
		var m transferRun
		var all []transferRun
		var last *harness.Harness
		var fetcher, seeder *harness.Node
		for r := range runs {
			if last != nil {
				last.StopAll()
				os.RemoveAll(last.Dir) // two GiB a run
			}
			last = harness.New(bin, filepath.Join(dir, fmt.Sprintf("%s-%d", strings.ReplaceAll(tr.name, "+", "-"), r)))
			last.RunArgs = []string{"--rpc-addr", "127.0.0.1:0", "--listen", tr.listen}
			if m, fetcher, seeder, err = measureTransfer(ctx, last, dir, tr, model, size); err != nil {
				last.StopAll()
				return err
			}
			all = append(all, m)
		}
		m = medianRun(all)
		fmt.Fprintf(tw, "%s\t%.0f MB/s\t%.0f MB/s\t%.0f MB/s\t%.0f MB/s\t%.0f%% / %.0f%% / %.0f%%\t≥ 70%%\n", tr.name, m.raw, m.raw2, m.disk, m.fetch, 100*m.ofRaw, 100*m.ofRaw2, 100*m.ofBound)
		if tr.name == "TCP+Noise" { // the default security order
			peak, _ := peakRSS(fetcher)
			defer last.StopAll()
			st, err := compareSeeders(ctx, last, tr, seeder)
			if err != nil {
				return err
			}
			defer func() {
				fmt.Printf("\none fetcher from 3 seeders vs from 1 seeder (%s), fresh fetchers taking turns, median of %d each (goal: ≥ 1.0×):\n", tr.name, seederRounds)
				fmt.Printf("  seeders' blobs in the page cache: %.2fs vs %.2fs, speed-up %.2f×\n", st.warmThree, st.warmOne, st.warmOne/st.warmThree)
				fmt.Printf("  seeders' blobs read from the disk the fetcher writes to: %.2fs vs %.2fs, speed-up %.2f×\n", st.coldThree, st.coldOne, st.coldOne/st.coldThree)
				fmt.Printf("peak RSS of the daemon fetching %d MiB: %.0f MiB (goal ≤ 256 MiB)\n", sizeMiB, float64(peak)/(1<<20))
			}()
		} else {
			last.StopAll()
		}
	}
	return tw.Flush()
}

// transferRun is one run's measurements (MB/s) and its same-run ratios.
type transferRun struct {
	raw, raw2, disk, fetch float64
	ofRaw, ofRaw2, ofBound float64
}

// measureTransfer runs the raw streams, the disk bound and a daemon fetch once, back to back.
func measureTransfer(ctx context.Context, h *harness.Harness, dir string, tr transport, model string, size int64) (transferRun, *harness.Node, *harness.Node, error) {
	var m transferRun
	var err error
	if m.raw, err = rawStream(ctx, tr, size); err != nil {
		return m, nil, nil, fmt.Errorf("%s raw stream: %w", tr.name, err)
	}
	if m.raw2, err = rawStreamTwoProcesses(ctx, tr, size); err != nil {
		return m, nil, nil, fmt.Errorf("%s raw stream between processes: %w", tr.name, err)
	}
	if m.disk, err = diskWrite(dir, size); err != nil {
		return m, nil, nil, fmt.Errorf("disk write: %w", err)
	}
	secs, fetcher, seeder, err := daemonFetch(ctx, h, tr, model)
	if err != nil {
		return m, nil, nil, fmt.Errorf("%s fetch: %w", tr.name, err)
	}
	m.fetch = float64(size) / 1e6 / secs
	m.ofRaw, m.ofRaw2, m.ofBound = m.fetch/m.raw, m.fetch/m.raw2, m.fetch/min(m.raw2, m.disk)
	return m, fetcher, seeder, nil
}

// medianRun takes the median of each measurement and of each same-run ratio.
func medianRun(runs []transferRun) transferRun {
	pick := func(f func(transferRun) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	return transferRun{
		raw: pick(func(r transferRun) float64 { return r.raw }), raw2: pick(func(r transferRun) float64 { return r.raw2 }),
		disk: pick(func(r transferRun) float64 { return r.disk }), fetch: pick(func(r transferRun) float64 { return r.fetch }),
		ofRaw: pick(func(r transferRun) float64 { return r.ofRaw }), ofRaw2: pick(func(r transferRun) float64 { return r.ofRaw2 }),
		ofBound: pick(func(r transferRun) float64 { return r.ofBound }),
	}
}

func writeRandomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(f, rand.Reader, size)
	return err
}

// newRawHost builds a plain libp2p host on transport tr.
func newRawHost(tr transport) (host.Host, error) {
	opts := []libp2p.Option{libp2p.ListenAddrStrings(tr.listen)}
	if strings.Contains(tr.listen, "quic") {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	} else {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport))
	}
	if tr.security == "noise" {
		opts = append(opts, libp2p.Security(noise.ID, noise.New))
	} else {
		opts = append(opts, libp2p.Security(libp2ptls.ID, libp2ptls.New))
	}
	return libp2p.New(opts...)
}

// rawProto is the protocol of the raw-stream baseline: the receiver discards what it reads and
// answers with the count when the sender half-closes.
const rawProto = "/bench/raw"

// serveRawSink makes h a raw-stream receiver that reports each stream's byte count on done.
func serveRawSink(h host.Host, done chan<- int64) {
	h.SetStreamHandler(rawProto, func(s network.Stream) {
		n, _ := io.Copy(io.Discard, s)
		fmt.Fprintf(s, "%d\n", n)
		s.Close()
		if done != nil {
			done <- n
		}
	})
}

// sendRaw streams size bytes to p over a new stream and waits for the receiver's count.
func sendRaw(ctx context.Context, a host.Host, p peer.AddrInfo, size int64) (float64, error) {
	if err := a.Connect(ctx, p); err != nil {
		return 0, err
	}
	s, err := a.NewStream(ctx, p.ID, rawProto)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := s.Write(buf); err != nil {
			return 0, err
		}
	}
	s.CloseWrite()
	var n int64
	if _, err := fmt.Fscanf(s, "%d\n", &n); err != nil || n != size {
		return 0, fmt.Errorf("receiver got %d of %d bytes (%v)", n, size, err)
	}
	return float64(size) / 1e6 / time.Since(start).Seconds(), nil
}

// rawStream moves size bytes over one libp2p stream between two in-process hosts and returns MB/s.
func rawStream(ctx context.Context, tr transport, size int64) (float64, error) {
	a, err := newRawHost(tr)
	if err != nil {
		return 0, err
	}
	defer a.Close()
	b, err := newRawHost(tr)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	serveRawSink(b, nil)
	return sendRaw(ctx, a, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}, size)
}

// rawStreamTwoProcesses is rawStream with the receiver in a child process (this program run
// with -raw-sink), as the daemons are: two Go runtimes sharing the machine's cores.
func rawStreamTwoProcesses(ctx context.Context, tr transport, size int64) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, self, "-raw-sink", tr.name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var line string
	if _, err := fmt.Fscanln(out, &line); err != nil {
		return 0, fmt.Errorf("raw sink: %w", err)
	}
	info, err := peer.AddrInfoFromString(line)
	if err != nil {
		return 0, err
	}
	a, err := newRawHost(tr)
	if err != nil {
		return 0, err
	}
	defer a.Close()
	return sendRaw(ctx, a, *info, size)
}

// runRawSink is the child side of rawStreamTwoProcesses: it prints its address, receives one
// stream and exits.
func runRawSink(name string) error {
	for _, tr := range transports {
		if tr.name != name {
			continue
		}
		h, err := newRawHost(tr)
		if err != nil {
			return err
		}
		defer h.Close()
		done := make(chan int64, 1)
		serveRawSink(h, done)
		fmt.Printf("%s/p2p/%s\n", h.Addrs()[0], h.ID())
		<-done
		time.Sleep(100 * time.Millisecond) // let the count reach the sender
		return nil
	}
	return fmt.Errorf("unknown transport %q", name)
}

// daemonFetch runs a publisher and a fetcher on transport tr, publishes model on the first and
// times the second's fetch.
func daemonFetch(ctx context.Context, h *harness.Harness, tr transport, model string) (float64, *harness.Node, *harness.Node, error) {
	pub, err := h.Init(ctx, "publisher", []string{"publisher"}, "--listen", tr.listen)
	if err != nil {
		return 0, nil, nil, err
	}
	fetcher, err := h.Init(ctx, "fetcher", []string{"trainer"}, "--listen", tr.listen)
	if err != nil {
		return 0, nil, nil, err
	}
	for _, n := range []*harness.Node{pub, fetcher} {
		if err := setSecurity(n, tr.security); err != nil {
			return 0, nil, nil, err
		}
	}
	if err := pub.Start(ctx); err != nil {
		return 0, nil, nil, err
	}
	if err := fetcher.Start(ctx, "--bootstrap", pub.Info().Addrs[0]); err != nil {
		return 0, nil, nil, err
	}
	res, err := pub.Client().ModelPublish(ctx, adminrpc.PublishParams{Path: model, Name: "bench", Price: "0"})
	if err != nil {
		return 0, nil, nil, err
	}
	profiled := profileCPU(ctx, "transfer-"+strings.ReplaceAll(tr.name, "+", "-"), 3*time.Second, map[string]*harness.Node{"seeder": pub, "fetcher": fetcher})
	secs, err := fetchModel(ctx, fetcher, res.ModelID)
	if perr := profiled(); err == nil {
		err = perr
	}
	return secs, fetcher, pub, err
}

// seederRounds is how many fetches compareSeeders times each way.
const seederRounds = 3

// seederTimes are median fetch seconds from one seeder and from three, with the seeders' blob
// files in the page cache (warm) and not (cold).
type seederTimes struct{ warmOne, warmThree, coldOne, coldThree float64 }

// compareSeeders adds a third seeder next to pub and the first fetcher (both hold the model), then
// times fresh fetchers in turn: one allowed a single provider (transfer.max_providers = 1), one
// the default (all three), seederRounds times each, so both see the same machine at the same
// moments. Each pair runs once with every seeder's blob file in the page cache and once with none
// (on one machine the seeders otherwise share one disk with the fetcher's writes; on separate
// machines each has its own).
func compareSeeders(ctx context.Context, h *harness.Harness, tr transport, pub *harness.Node) (seederTimes, error) {
	start := func(name string, maxProviders int) (*harness.Node, error) {
		n, err := h.Init(ctx, name, []string{"trainer"}, "--listen", tr.listen)
		if err != nil {
			return nil, err
		}
		if err := setSecurity(n, tr.security); err != nil {
			return nil, err
		}
		if maxProviders > 0 {
			if err := n.EditConfig(func(c *config.Config) { c.Transfer.MaxProviders = maxProviders }); err != nil {
				return nil, err
			}
		}
		return n, n.Start(ctx, "--bootstrap", pub.Info().Addrs[0])
	}
	models, err := pub.Client().ModelList(ctx)
	if err != nil || len(models) == 0 {
		return seederTimes{}, fmt.Errorf("publisher's models: %v", err)
	}
	id := models[0].ModelID
	third, err := start("seeder3", 0)
	if err != nil {
		return seederTimes{}, err
	}
	if _, err := fetchModel(ctx, third, id); err != nil {
		return seederTimes{}, err
	}
	blobs, _ := filepath.Glob(filepath.Join(h.Dir, "*", node.BlobDir, id+".blob"))
	if len(blobs) != 3 {
		return seederTimes{}, fmt.Errorf("found %d seeders' blob files, want 3: %v", len(blobs), blobs)
	}
	times := map[string][]float64{}
	for i := range seederRounds {
		for _, warm := range []bool{true, false} {
			for _, providers := range []int{1, 0} {
				if err := setCached(blobs, warm); err != nil {
					return seederTimes{}, err
				}
				n, err := start(fmt.Sprintf("fetcher-%d-%v-%d", i, warm, providers), providers)
				if err != nil {
					return seederTimes{}, err
				}
				if err := waitPeers(ctx, n, 3); err != nil {
					return seederTimes{}, err
				}
				secs, err := fetchModel(ctx, n, id)
				if err != nil {
					return seederTimes{}, err
				}
				key := fmt.Sprintf("%v-%d", warm, providers)
				times[key] = append(times[key], secs)
				n.Stop()
				os.RemoveAll(n.Datadir) // a GiB each
			}
		}
	}
	return seederTimes{
		warmOne: median(times["true-1"]), warmThree: median(times["true-0"]),
		coldOne: median(times["false-1"]), coldThree: median(times["false-0"]),
	}, nil
}

// setCached reads files into the page cache (warm) or drops their clean pages from it.
func setCached(files []string, warm bool) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		if warm {
			_, err = io.Copy(io.Discard, f)
		} else {
			err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

// diskWrite measures what a fetcher's disk takes: size bytes of 1 MiB chunks written into a new
// blob file in dir the way a fetching daemon writes them (store/blob, O_DIRECT where the file
// system allows it, eight writes in flight), then synced.
func diskWrite(dir string, size int64) (float64, error) {
	blobs, err := blob.OpenDir(filepath.Join(dir, "disk-bound"))
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(filepath.Join(dir, "disk-bound"))
	l := blob.Layout{Size: uint64(size), ChunkSize: 1 << 20, Chunks: uint64((size + 1<<20 - 1) >> 20)}
	f, err := blobs.OpenDirect([32]byte{1}, l)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// One random chunk, copied into each write buffer as the fetcher copies each verified chunk.
	data := make([]byte, l.ChunkSize+blob.Overhead)
	rand.Read(data)
	start := time.Now()
	next := make(chan uint64, l.Chunks)
	for i := range l.Chunks {
		next <- i
	}
	close(next)
	var g errgroup.Group
	for range 8 {
		g.Go(func() error {
			for i := range next {
				n, err := l.CipherLen(i)
				if err != nil {
					return err
				}
				buf := blob.Buffer(n)
				copy(buf, data)
				err = f.WriteChunk(i, buf)
				blob.Release(buf)
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return float64(l.CipherSize()) / 1e6 / time.Since(start).Seconds(), nil
}

// setSecurity rewrites the node's config so it offers only the given security protocol.
func setSecurity(n *harness.Node, sec string) error {
	path := filepath.Join(n.Datadir, "config.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out := strings.Replace(string(b), "security = ['noise', 'tls']", fmt.Sprintf("security = ['%s']", sec), 1)
	return os.WriteFile(path, []byte(out), 0o600)
}

func waitPeers(ctx context.Context, n *harness.Node, want int) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return harness.WaitFor(wctx, func() error {
		ps, err := n.Client().NodePeers(wctx)
		if err != nil {
			return err
		}
		if len(ps) < want {
			return fmt.Errorf("%d peers", len(ps))
		}
		return nil
	})
}

// fetchModel waits until n knows the model, then times model_fetch until the job is done.
func fetchModel(ctx context.Context, n *harness.Node, id string) (float64, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := harness.WaitFor(wctx, func() error { _, err := n.Client().ModelGet(wctx, id); return err }); err != nil {
		return 0, err
	}
	start := time.Now()
	job, err := n.Client().ModelFetch(ctx, id)
	if err != nil {
		return 0, err
	}
	for {
		st, err := n.Client().JobStatus(ctx, job.JobID)
		if err != nil {
			return 0, err
		}
		switch st.State {
		case "done":
			return time.Since(start).Seconds(), nil
		case "failed":
			return 0, fmt.Errorf("fetch failed: %s", st.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// peakRSS reads VmHWM, the process's peak resident memory.
func peakRSS(n *harness.Node) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb)
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM")
}
