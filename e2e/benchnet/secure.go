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

// pairRatios are the secure/plain ratios of rounds measured back to back.
type pairRatios struct{ secs, cpu, bytes, rss []float64 }

// measurePairs runs reps pairs of rounds, plain and secure, alternating which goes first.
func measurePairs(ctx context.Context, rn *roundNet, m benchModel, reps int, closed *int) (plain, secure modeFigures, r pairRatios, err error) {
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
				return plain, secure, r, fmt.Errorf("%s, %d trainers, secure %v: %w", m.name, n, sec, err)
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
		r.secs = append(r.secs, s.secs/p.secs)
		r.cpu = append(r.cpu, s.cpu/p.cpu)
		r.bytes = append(r.bytes, float64(s.inBytes)/float64(p.inBytes))
		r.rss = append(r.rss, float64(s.peakRSS)/float64(p.peakRSS))
	}
	return plain, secure, r, nil
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
		plain, secure, r, err := measurePairs(ctx, rn, m, reps, &closed)
		rn.close()
		if err != nil {
			return err
		}
		for _, row := range []struct {
			mode string
			f    modeFigures
		}{{"plain", plain}, {"secure", secure}} {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.2f\t%s\t%s\t\n", m.name, row.mode, trainers, mid(row.f.secs), mid(row.f.cpu), bytesStr(mid(row.f.perTrainer)), bytesStr(mid(row.f.rss)))
		}
		fmt.Fprintf(tw, "%s\tsecure / plain\t\t%.2f×\t%.2f×\t%.2f×\t%.2f×\t\n", m.name, mid(r.secs), mid(r.cpu), mid(r.bytes), mid(r.rss))
		notes = append(notes, fmt.Sprintf("%s: coordinator idle CPU %.3f s/s; %d coordinator connections closed during rounds", m.name, idle, closed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("\nmedians of %d rounds per mode; ratios are medians of back-to-back pairs (order alternating)\n", reps)
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
	fmt.Fprintf(tw, "model\tn\tround s\tCPU s secure\tCPU s plain\tbytes in / trainer secure\tplain\tsecure CPU ÷ n·log2 n\tsecure CPU ÷ n²\tpeak RSS secure\tplain\t\n")
	var notes []string
	for _, m := range modelsFor(sizeMiB) {
		var base0, base1 float64 // CPU ÷ n·log2 n and ÷ n² at the first n
		for i, n := range ns {
			rn, err := startRoundNet(ctx, bin, filepath.Join(dir, fmt.Sprintf("%d-%d", m.sizeMiB, n)), n, m.sizeMiB)
			if err != nil {
				return fmt.Errorf("%s network of %d: %w", m.name, n, err)
			}
			closed := 0
			plain, secure, _, err := measurePairs(ctx, rn, m, reps, &closed)
			rn.close()
			os.RemoveAll(filepath.Join(dir, fmt.Sprintf("%d-%d", m.sizeMiB, n)))
			if err != nil {
				return err
			}
			cpu := mid(secure.cpu)
			nlogn, n2 := float64(n)*math.Log2(float64(n)), float64(n*n)
			if i == 0 {
				base0, base1 = cpu/nlogn, cpu/n2
			}
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%s\t%s\t%.2f\t%.2f\t%s\t%s\t\n", m.name, n, mid(secure.secs), cpu, mid(plain.cpu),
				bytesStr(mid(secure.perTrainer)), bytesStr(mid(plain.perTrainer)), cpu/nlogn/base0, cpu/n2/base1,
				bytesStr(mid(secure.rss)), bytesStr(mid(plain.rss)))
			if closed > 0 {
				notes = append(notes, fmt.Sprintf("%s, n = %d: %d coordinator connections closed during rounds (bytes a lower bound)", m.name, n, closed))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Printf("\nmedians of %d secure and %d plain rounds per n (pairs back to back); the ÷ columns are relative to n = %d (1.00 = grows exactly so)\n", reps, reps, ns[0])
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

// mid is the median of xs, the mean of the two middle values when their number is even.
func mid(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
