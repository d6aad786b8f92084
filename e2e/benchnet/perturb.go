package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/califusion/califusion/node/fl"
)

// perturbStep is the largest change the -perturb hook makes to a coordinate: the large model's
// secure rounds clip each delta coordinate at 1, far above it.
const perturbStep = 0.01

// perturbSamples is the sample count the -perturb hook claims.
const perturbSamples = 100

// runPerturb is the exec training hook of the large-model rounds (`benchnet -perturb {model}
// {out}`): it writes a copy of the model with every coordinate moved by a uniform step in
// [−perturbStep, perturbStep] as the update, with metadata samples = perturbSamples.
func runPerturb(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("-perturb takes the model and the update path, got %q", args)
	}
	raw, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	f, err := fl.Parse(raw)
	if err != nil {
		return err
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		for j := range t.Elements() {
			t.Set(j, t.At(j)+perturbStep*(2*rand.Float64()-1))
		}
	}
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	f.Metadata["samples"] = fmt.Sprint(perturbSamples)
	out, err := f.Encode()
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(args[1]), "."+filepath.Base(args[1])+".tmp")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, args[1])
}

// largeModel is a safetensors file of F32 tensors totalling about sizeMiB MiB (four tensors of
// equal length, zeros).
func largeModel(sizeMiB int) ([]byte, error) {
	per := sizeMiB << 20 / 4 / 4 // coordinates per tensor
	f := &fl.File{Metadata: map[string]string{}}
	for i := range 4 {
		f.Tensors = append(f.Tensors, fl.NewTensor(fmt.Sprintf("layer%d.weight", i), fl.F32, per))
	}
	return f.Encode()
}
