package devnet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/nodeproc"
	"github.com/califusion/califusion/node/rounds"
	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// SecureClip is the secure rounds' clamp on each coordinate of a delta (secagg.Params.Clip): the
// digits model's first-round deltas reach a few units per weight.
const SecureClip = 16

// MinSecureTrainers is the fewest trainers a secure story runs with (SecAgg+'s defaults need 3);
// with fewer, the rounds are plain.
const MinSecureTrainers = 3

// trained is one trainer's update in a round, as the devnet knows it.
type trained struct {
	node     *nodeproc.Node
	updateID string
	samples  uint64
}

// plainFedAvgGap is how far a secure round's new version is from the plain FedAvg of the same
// updates, which only the devnet can compute (it reads every contributor's update file from its
// datadir, as no coordinator can): the largest difference of one weight, and the bound
// quantisation allows. The reference clips each delta as the trainers do (scaled to the round's
// clip norm, clamped to the secure clip), weighs it by its sample count and adds the weighted
// mean to the base, then takes the round's server step (ref, strategy.go) as the coordinator
// does, carrying ref's state when the coordinator carried its own.
func plainFedAvgGap(basePath, newPath string, contributors []trained, clipNorm float64, p secagg.Params, ref *strategyRef, carried bool) (gap, bound float64, err error) {
	load := func(path string) (*fl.File, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return fl.Parse(raw)
	}
	base, err := load(basePath)
	if err != nil {
		return 0, 0, err
	}
	next, err := load(newPath)
	if err != nil {
		return 0, 0, err
	}
	if len(contributors) == 0 {
		return 0, 0, errors.New("no contributors")
	}
	dim := 0
	for i := range base.Tensors {
		dim += base.Tensors[i].Elements()
	}
	sum := make([]float64, dim)
	var weight float64
	for _, c := range contributors {
		up, err := load(filepath.Join(c.node.Datadir, rounds.UpdatesDir, c.updateID+".safetensors"))
		if err != nil {
			return 0, 0, fmt.Errorf("%s's update: %w", c.node.Name, err)
		}
		if len(up.Tensors) != len(base.Tensors) {
			return 0, 0, fmt.Errorf("%s's update has %d tensors, the base %d", c.node.Name, len(up.Tensors), len(base.Tensors))
		}
		delta := make([]float64, 0, dim)
		for i := range base.Tensors {
			for j := range base.Tensors[i].Elements() {
				delta = append(delta, float64(float32(up.Tensors[i].At(j)-base.Tensors[i].At(j))))
			}
		}
		var ss float64
		for _, d := range delta {
			ss += d * d
		}
		scale := 1.0
		if norm := math.Sqrt(ss); clipNorm > 0 && norm > clipNorm {
			scale = clipNorm / norm
		}
		w := float64(min(max(c.samples, 1), p.MaxWeight))
		for k, d := range delta {
			sum[k] += w * max(-p.Clip, min(p.Clip, d*scale))
		}
		weight += w
	}
	k := 0
	mean := make([]float64, 0, dim)
	for i := range base.Tensors {
		for j := range base.Tensors[i].Elements() {
			mean = append(mean, base.Tensors[i].At(j)+sum[k]/weight)
			k++
		}
	}
	want, stepBound, err := ref.step(base, mean, carried, secagg.QuantisationBound(p))
	if err != nil {
		return 0, 0, err
	}
	k = 0
	for i := range base.Tensors {
		for j := range base.Tensors[i].Elements() {
			gap = max(gap, math.Abs(next.Tensors[i].At(j)-want[k]))
			k++
		}
	}
	return gap, stepBound + 1e-6, nil // + the float32 rounding of the stored weights
}

// exportOn fetches and unlocks model on n (a trainer or the publisher: it paid for the lineage,
// or published it, so no payment is made) and exports it to path.
func exportOn(ctx context.Context, n *nodeproc.Node, model, path string) error {
	if err := fetchOn(ctx, n, model); err != nil {
		return err
	}
	if _, err := n.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: model}); err != nil {
		return fmt.Errorf("%s: unlock %s: %w", n.Name, model, err)
	}
	if _, err := n.Client().ModelExportWith(ctx, adminrpc.ExportParams{ModelID: model, Path: path, Overwrite: true}); err != nil {
		return fmt.Errorf("%s: export %s: %w", n.Name, model, err)
	}
	return nil
}
