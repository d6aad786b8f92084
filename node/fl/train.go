package fl

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Dataset is a labelled feature matrix.
type Dataset struct {
	X       [][]float64
	Y       []int
	Classes int
}

// LoadCSV reads a CSV file with ReadCSV, gunzipping it if its name ends in .gz.
func LoadCSV(path string, scale float64) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	return ReadCSV(r, path, scale)
}

// ReadCSV reads rows of numeric features followed by an integer label; features are divided by
// scale. name labels errors.
func ReadCSV(r io.Reader, name string, scale float64) (*Dataset, error) {
	path := name
	d := &Dataset{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		cols := strings.Split(text, ",")
		if len(cols) < 2 {
			return nil, fmt.Errorf("%s:%d: need features and a label", path, line)
		}
		row := make([]float64, len(cols)-1)
		for i, c := range cols[:len(cols)-1] {
			v, err := strconv.ParseFloat(strings.TrimSpace(c), 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: feature %d: %v", path, line, i, err)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s:%d: feature %d is %q, not a finite number", path, line, i, strings.TrimSpace(c))
			}
			row[i] = v / scale
		}
		label, err := strconv.Atoi(strings.TrimSpace(cols[len(cols)-1]))
		if err != nil || label < 0 {
			return nil, fmt.Errorf("%s:%d: label %q is not a class number", path, line, cols[len(cols)-1])
		}
		if len(d.X) > 0 && len(row) != len(d.X[0]) {
			return nil, fmt.Errorf("%s:%d: %d features, earlier rows have %d", path, line, len(row), len(d.X[0]))
		}
		d.X, d.Y = append(d.X, row), append(d.Y, label)
		d.Classes = max(d.Classes, label+1)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(d.X) == 0 {
		return nil, fmt.Errorf("%s holds no rows", path)
	}
	return d, nil
}

func (d *Dataset) subset(idx []int) *Dataset {
	s := &Dataset{Classes: d.Classes}
	for _, i := range idx {
		s.X, s.Y = append(s.X, d.X[i]), append(s.Y, d.Y[i])
	}
	return s
}

// Split shuffles with seed and holds out testFrac of the rows.
func (d *Dataset) Split(seed uint64, testFrac float64) (train, test *Dataset) {
	idx := rand.New(rand.NewPCG(seed, 1)).Perm(len(d.X))
	n := int(float64(len(idx)) * testFrac)
	return d.subset(idx[n:]), d.subset(idx[:n])
}

// Shards cuts d into n label-skewed (non-IID) shards: a skew fraction of the rows (0..1) is
// sorted by label and dealt out in contiguous runs, so each shard sees mostly a few classes; the
// rest is dealt round-robin in random order. Skew 1 is fully label-sorted.
func (d *Dataset) Shards(n int, seed uint64, skew float64) []*Dataset {
	idx := rand.New(rand.NewPCG(seed, 2)).Perm(len(d.X))
	k := int(float64(len(idx)) * min(max(skew, 0), 1))
	sorted, rest := idx[:k], idx[k:]
	sort.SliceStable(sorted, func(a, b int) bool { return d.Y[sorted[a]] < d.Y[sorted[b]] })
	parts := make([][]int, n)
	per := (len(sorted) + n - 1) / n
	for s := range parts {
		lo, hi := min(s*per, len(sorted)), min((s+1)*per, len(sorted))
		parts[s] = append(parts[s], sorted[lo:hi]...)
	}
	for i, j := range rest {
		parts[i%n] = append(parts[i%n], j)
	}
	out := make([]*Dataset, n)
	for s := range parts {
		out[s] = d.subset(parts[s])
	}
	return out
}

// Train runs the built-in trainer that fits model's tensors: the MLP (w1, b1, w2, b2) or
// logistic regression (weight, bias).
func Train(model *File, d *Dataset, epochs, batch int, lr float64, seed uint64) (*File, error) {
	return TrainProx(model, d, epochs, batch, lr, seed, 0)
}

// TrainProx is Train with FedProx's proximal term (Li et al. 2020): the loss gains
// mu/2·‖w − w_base‖², w_base being model's weights, so each step also pulls w back towards the
// base by lr·mu·(w − w_base). mu 0 is plain Train. The MLP trainer takes no proximal term.
func TrainProx(model *File, d *Dataset, epochs, batch int, lr float64, seed uint64, mu float64) (*File, error) {
	return TrainProxContext(context.Background(), model, d, epochs, batch, lr, seed, mu)
}

// TrainProxContext is TrainProx that stops when ctx ends: it looks at ctx before every
// mini-batch and returns ctx's error (context.DeadlineExceeded for a deadline), so a trainer's
// time limit bounds the built-in trainer as it bounds an exec hook.
func TrainProxContext(ctx context.Context, model *File, d *Dataset, epochs, batch int, lr float64, seed uint64, mu float64) (*File, error) {
	if model.Tensor("w1") != nil {
		if mu != 0 {
			return nil, fmt.Errorf("the built-in MLP trainer has no proximal term: train with prox_mu 0 or a logistic-regression model")
		}
		return trainMLP(ctx, model, d, epochs, batch, lr, seed)
	}
	return trainLogReg(ctx, model, d, epochs, batch, lr, seed, mu)
}

// NewLogReg returns a zero multinomial logistic-regression model: "weight" [classes, features]
// and "bias" [classes], float32.
func NewLogReg(features, classes int) *File {
	return &File{Tensors: []Tensor{NewTensor("bias", F32, classes), NewTensor("weight", F32, classes, features)}, Metadata: map[string]string{}}
}

// TrainLogReg runs SGD on a copy of model, in the data's standardised coordinates
// (preconditioner), and returns it with metadata "samples".
func TrainLogReg(model *File, d *Dataset, epochs, batch int, lr float64, seed uint64) (*File, error) {
	return trainLogReg(context.Background(), model, d, epochs, batch, lr, seed, 0)
}

// trainLogReg is TrainLogReg with FedProx's proximal coefficient mu (TrainProx), the proximal
// term measured in the standardised coordinates SGD runs in.
func trainLogReg(ctx context.Context, model *File, d *Dataset, epochs, batch int, lr float64, seed uint64, mu float64) (*File, error) {
	w, b := model.Tensor("weight"), model.Tensor("bias")
	if w == nil || b == nil || len(w.Shape) != 2 || len(b.Shape) != 1 || w.Shape[0] != b.Shape[0] {
		return nil, fmt.Errorf("model is not a logistic regression (weight [C,F], bias [C])")
	}
	classes, features := w.Shape[0], w.Shape[1]
	if len(d.X) == 0 {
		return nil, fmt.Errorf("no training rows")
	}
	if len(d.X[0]) != features || d.Classes > classes {
		return nil, fmt.Errorf("data has %d features and %d classes; the model takes %d and %d", len(d.X[0]), d.Classes, features, classes)
	}
	W := make([]float64, classes*features)
	B := make([]float64, classes)
	for i := range W {
		W[i] = w.At(i)
	}
	for i := range B {
		B[i] = b.At(i)
	}
	pc := newPreconditioner(d.X)
	pc.toTrained(W, B)
	z := make([]float64, features)
	W0, B0 := append([]float64(nil), W...), append([]float64(nil), B...)
	rng := rand.New(rand.NewPCG(seed, 3))
	p := make([]float64, classes)
	gW := make([]float64, len(W))
	gB := make([]float64, classes)
	for range epochs {
		order := rng.Perm(len(d.X))
		for start := 0; start < len(order); start += batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			end := min(start+batch, len(order))
			clear(gW)
			clear(gB)
			for _, i := range order[start:end] {
				pc.standardize(d.X[i], z)
				softmax(W, B, z, p)
				p[d.Y[i]] -= 1
				for c := range classes {
					gB[c] += p[c]
					for f, x := range z {
						gW[c*features+f] += p[c] * x
					}
				}
			}
			scale := lr / float64(end-start)
			for j := range W {
				W[j] -= scale*gW[j] + lr*mu*(W[j]-W0[j])
			}
			for c := range B {
				B[c] -= scale*gB[c] + lr*mu*(B[c]-B0[c])
			}
		}
	}
	pc.toModel(W, B)
	out := NewLogReg(features, classes)
	for i, v := range W {
		out.Tensor("weight").Set(i, v)
	}
	for i, v := range B {
		out.Tensor("bias").Set(i, v)
	}
	out.Metadata["samples"] = strconv.Itoa(len(d.X))
	return out, nil
}

func softmax(W, B, x, p []float64) {
	features := len(x)
	m := math.Inf(-1)
	for c := range p {
		z := B[c]
		for f, v := range x {
			z += W[c*features+f] * v
		}
		p[c] = z
		m = math.Max(m, z)
	}
	var sum float64
	for c := range p {
		p[c] = math.Exp(p[c] - m)
		sum += p[c]
	}
	for c := range p {
		p[c] /= sum
	}
}

// Accuracy is the share of rows a logistic-regression or MLP model classifies correctly.
func Accuracy(model *File, d *Dataset) float64 {
	if n, err := loadMLP(model); err == nil {
		a, p := make([]float64, n.h), make([]float64, n.c)
		right := 0
		for i, x := range d.X {
			n.forward(x, a, p)
			if argmax(p) == d.Y[i] {
				right++
			}
		}
		return float64(right) / float64(len(d.X))
	}
	w, b := model.Tensor("weight"), model.Tensor("bias")
	classes, features := w.Shape[0], w.Shape[1]
	W := make([]float64, classes*features)
	B := make([]float64, classes)
	for i := range W {
		W[i] = w.At(i)
	}
	for i := range B {
		B[i] = b.At(i)
	}
	p := make([]float64, classes)
	right := 0
	for i, x := range d.X {
		softmax(W, B, x, p)
		if argmax(p) == d.Y[i] {
			right++
		}
	}
	return float64(right) / float64(len(d.X))
}

func argmax(p []float64) int {
	best := 0
	for c := range p {
		if p[c] > p[best] {
			best = c
		}
	}
	return best
}
