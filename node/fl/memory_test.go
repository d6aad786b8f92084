package fl

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestFedAvgPeakRSS aggregates 10 updates the way a coordinator does (each update read into one
// reused buffer and parsed as zero-copy views, folded, the result written out as a stream) in a
// child process, and checks the child's peak resident memory against the model's size: base +
// one update + float32 sums = 3 × model, plus the runtime. CALIFUSION_BENCH_PARAMS sets the
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
	if ratio > 3.3 {
		t.Errorf("aggregating 10 updates took %.2f × the model's size, want ≤ 3 (+10%% slack)", ratio)
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

func rssChild(n int) {
	base0 := vmHWM()
	base := &File{Tensors: []Tensor{NewTensor("w", F32, n)}, Metadata: map[string]string{}}
	for i := range base.Tensors[0].Data { // a real base model is resident, not untouched zeros
		base.Tensors[0].Data[i] = byte(i)
	}
	upd := &File{Tensors: []Tensor{NewTensor("w", F32, n)}, Metadata: map[string]string{"samples": "10"}}
	enc, _ := upd.Encode() // the one update buffer, refilled for every update as files are read
	upd = nil
	avg := NewFedAvg(base)
	for k := range 10 {
		u, err := Parse(enc)
		if err != nil {
			panic(err)
		}
		u.Tensors[0].Set(k, float64(k)) // a different update each time, in place
		avg.Add(u, uint64(k+1))
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
