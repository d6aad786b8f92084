package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"
)

// Clips of the secure rounds: the devnet model's trained weights stay below 16 (as in
// e2e/secure_rounds_test.go); the large model's deltas are at most perturbStep.
const (
	digitsClip = 16
	largeClip  = 1
)

// benchModel is one model the round benchmarks run on.
type benchModel struct {
	name    string
	sizeMiB int // 0: the devnet model
	clip    float64
}

// reps is how many pairs of rounds to run on the model: five times as many on the devnet model,
// whose rounds take a fraction of a second and a few of the kernel's 10 ms CPU ticks.
func (m benchModel) reps(reps int) int {
	if m.sizeMiB == 0 {
		return 5 * reps
	}
	return reps
}

func modelsFor(sizeMiB int) []benchModel {
	ms := []benchModel{{"devnet (digits logreg)", 0, digitsClip}}
	if sizeMiB > 0 {
		ms = append(ms, benchModel{fmt.Sprintf("%d MiB F32", sizeMiB), sizeMiB, largeClip})
	}
	return ms
}

// modeFigures collects one mode's rounds on one network.
type modeFigures struct{ secs, cpu, perTrainer, rss []float64 }

func (m *modeFigures) add(f roundFigures, trainers int) {
	m.secs = append(m.secs, f.secs)
	m.cpu = append(m.cpu, f.cpu)
	m.perTrainer = append(m.perTrainer, float64(f.inBytes)/float64(trainers))
	m.rss = append(m.rss, float64(f.peakRSS))
}

// measurePairs runs reps pairs of rounds, plain and secure, back to back, alternating which goes
// first (so each mode's mean sees the same machine).
func measurePairs(ctx context.Context, rn *roundNet, m benchModel, reps int, closed *int) (plain, secure modeFigures, err error) {
	n := len(rn.trainers)
	for i := range reps {
		var p, s roundFigures
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, sec := range order {
			f, err := rn.measureRound(ctx, sec, m.clip)
			if err != nil {
				return plain, secure, fmt.Errorf("%s, %d trainers, secure %v: %w", m.name, n, sec, err)
			}
			*closed += f.closedConns
			if sec {
				s = f
			} else {
				p = f
			}
		}
		plain.add(p, n)
		secure.add(s, n)
	}
	return plain, secure, nil
}

// runSecure measures plain and secure rounds of trainers on the devnet model and on a model of
// sizeMiB MiB (none when 0).
func runSecure(trainers, sizeMiB, reps int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	dir, bin, err := workdir(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "model\tmode\ttrainers\tround s\tcoordinator CPU s\tbytes in / trainer\tcoordinator peak RSS\t\n")
	var notes []string
	for _, m := range modelsFor(sizeMiB) {
		rn, err := startRoundNet(ctx, bin, filepath.Join(dir, fmt.Sprint(m.sizeMiB)), trainers, m.sizeMiB)
		if err != nil {
			return fmt.Errorf("%s network: %w", m.name, err)
		}
		idle, err := rn.idleCPU(3 * time.Second)
		if err != nil {
			rn.close()
			return err
		}
		closed := 0
		plain, secure, err := measurePairs(ctx, rn, m, m.reps(reps), &closed)
		rn.close()
		if err != nil {
			return err
		}
		for _, row := range []struct {
			mode string
			f    modeFigures
		}{{"plain", plain}, {"secure", secure}} {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%s\t%s\t\n", m.name, row.mode, trainers, mean(row.f.secs), mean(row.f.cpu), bytesStr(mean(row.f.perTrainer)), bytesStr(mean(row.f.rss)))
		}
		fmt.Fprintf(tw, "%s\tsecure / plain\t\t%.2f×\t%.2f×\t%.2f×\t%.2f×\t\n", m.name, mean(secure.secs)/mean(plain.secs), mean(secure.cpu)/mean(plain.cpu), mean(secure.perTrainer)/mean(plain.perTrainer), mean(secure.rss)/mean(plain.rss))
		notes = append(notes, fmt.Sprintf("%s: coordinator idle CPU %.3f s/s; %d coordinator connections closed during rounds", m.name, idle, closed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("\nmeans over the rounds of each mode (%d pairs on the devnet model, %d on the large one, plain and secure back to back, order alternating)\n", benchModel{}.reps(reps), benchModel{sizeMiB: 1}.reps(reps))
	for _, n := range notes {
		fmt.Println(n)
	}
	return nil
}

// runGrowth measures secure rounds (and plain ones beside them) with each of ns trainers on the
// devnet model and on a model of sizeMiB MiB (none when 0).
func runGrowth(ns []int, sizeMiB, reps int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	dir, bin, err := workdir(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "model\tn\tround s secure\tplain\tCPU s secure\tCPU s plain\tsecure CPU ÷ n·log2 n\tsecure CPU ÷ n²\tbytes in / trainer secure\tplain\tsecure beyond the masked vector\tthat ÷ log2 n\tpeak RSS secure\tplain\t\n")
	var notes []string
	for _, m := range modelsFor(sizeMiB) {
		var base0, base1, base2 float64 // CPU ÷ n·log2 n, ÷ n², protocol bytes ÷ log2 n at the first n
		for i, n := range ns {
			rn, err := startRoundNet(ctx, bin, filepath.Join(dir, fmt.Sprintf("%d-%d", m.sizeMiB, n)), n, m.sizeMiB)
			if err != nil {
				return fmt.Errorf("%s network of %d: %w", m.name, n, err)
			}
			closed, dim := 0, rn.dim
			plain, secure, err := measurePairs(ctx, rn, m, m.reps(reps), &closed)
			rn.close()
			os.RemoveAll(filepath.Join(dir, fmt.Sprintf("%d-%d", m.sizeMiB, n)))
			if err != nil {
				return err
			}
			cpu := mean(secure.cpu)
			nlogn, n2 := float64(n)*math.Log2(float64(n)), float64(n*n)
			// What a trainer sends besides its masked vector (8 bytes a coordinate, the weight
			// one more): keys, sealed shares for its neighbours, reveals, framing.
			proto := mean(secure.perTrainer) - 8*float64(dim+1)
			if i == 0 {
				base0, base1, base2 = cpu/nlogn, cpu/n2, proto/math.Log2(float64(n))
			}
			fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\t%.2f\t%s\t%s\t%s\t%.2f\t%s\t%s\t\n", m.name, n, mean(secure.secs), mean(plain.secs), cpu, mean(plain.cpu),
				cpu/nlogn/base0, cpu/n2/base1, bytesStr(mean(secure.perTrainer)), bytesStr(mean(plain.perTrainer)),
				bytesStr(proto), proto/math.Log2(float64(n))/base2, bytesStr(mean(secure.rss)), bytesStr(mean(plain.rss)))
			if closed > 0 {
				notes = append(notes, fmt.Sprintf("%s, n = %d: %d coordinator connections closed during rounds (bytes a lower bound)", m.name, n, closed))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("\nmeans over %d pairs of rounds per n on the devnet model, %d on the large one (plain and secure back to back); the ÷ columns are relative to n = %d (1.00 = grows exactly so)\n", benchModel{}.reps(reps), benchModel{sizeMiB: 1}.reps(reps), ns[0])
	for _, n := range notes {
		fmt.Println(n)
	}
	return nil
}

func bytesStr(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// mean is the arithmetic mean of xs.
func mean(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

// mid is the median of xs, the mean of the two middle values when their number is even.
func mid(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
