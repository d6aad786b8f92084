package fl

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFedAvgPeakRSS aggregates 10 updates the way a coordinator does (each update streamed from
// its file into the sums, the result written out as a stream) in a child process, and checks the
// child's peak resident memory against the model's size: the base and the float32 sums, which
// become the result in place, = 2 × the model, plus the runtime. CALIFUSION_BENCH_PARAMS sets the
// size (default 4M parameters, 16 MB; the figure uses 25M).
func TestFedAvgPeakRSS(t *testing.T) {
	n := 4 << 20
	if v, err := strconv.Atoi(os.Getenv("CALIFUSION_BENCH_PARAMS")); err == nil && v > 0 {
		n = v
	}
	if os.Getenv("CALIFUSION_RSS_CHILD") != "" {
		rssChild(n)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFedAvgPeakRSS$")
	cmd.Env = append(os.Environ(), "CALIFUSION_RSS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var base, peak int64
	if _, err := fmt.Sscanf(lastLine(string(out), "rss "), "rss %d %d", &base, &peak); err != nil {
		t.Fatalf("child said %q: %v", out, err)
	}
	model := int64(4 * n)
	ratio := float64(peak-base) / float64(model)
	t.Logf("model %d MB: peak RSS %d MB, %d MB above the idle process = %.2f × the model", model>>20, peak>>20, (peak-base)>>20, ratio)
	if raceDetector {
		return // the race detector's shadow memory makes the figure meaningless; the plain run checks it
	}
	// Beyond the two model-sized arrays: 1 MiB read buffers and the runtime's own, a few tens
	// of MiB whatever the model.
	if limit := 2.2*float64(model) + 32<<20; float64(peak-base) > limit {
		t.Errorf("aggregating 10 updates took %d MB (%.2f × the model), want ≤ 2.2 × the model + 32 MiB", (peak-base)>>20, ratio)
	}
}

func lastLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// vmHWM reads the process's peak resident memory.
func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// writeUpdate writes a one-tensor float32 update of n parameters without holding it in memory.
func writeUpdate(w io.Writer, n, k int) {
	h := fmt.Sprintf(`{"w":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}}`, n, 4*n)
	for len(h)%8 != 0 {
		h += " "
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	binary.Write(bw, binary.LittleEndian, uint64(len(h)))
	bw.WriteString(h)
	piece := make([]byte, 1<<20)
	for i := range piece {
		piece[i] = byte(k + i)
	}
	for left := 4 * n; left > 0; left -= len(piece) {
		bw.Write(piece[:min(left, len(piece))])
	}
	bw.Flush()
}

func rssChild(n int) {
	base0 := vmHWM()
	base := &File{Tensors: []Tensor{NewTensor("w", F32, n)}, Metadata: map[string]string{}}
	for i := range base.Tensors[0].Data { // a real base model is resident, not untouched zeros
		base.Tensors[0].Data[i] = byte(i)
	}
	dir, err := os.MkdirTemp("", "fedavg-rss")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	var paths []string
	for k := range 10 { // the updates are files, as on a coordinator
		path := filepath.Join(dir, fmt.Sprint(k))
		f, err := os.Create(path)
		if err != nil {
			panic(err)
		}
		writeUpdate(f, n, k)
		f.Close()
		paths = append(paths, path)
	}
	avg := NewFedAvg(base)
	for k, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			panic(err)
		}
		fi, _ := f.Stat()
		if err := avg.AddFrom(bufio.NewReaderSize(f, 1<<20), fi.Size(), uint64(k+1)); err != nil {
			panic(err)
		}
		f.Close()
	}
	res, err := avg.Result()
	if err != nil {
		panic(err)
	}
	h := sha256.New()
	if _, err := res.WriteTo(h); err != nil {
		panic(err)
	}
	fmt.Printf("rss %d %d\n", base0, vmHWM())
}
