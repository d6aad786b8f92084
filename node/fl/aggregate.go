package fl

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// ErrNoUpdates is returned when there is nothing to aggregate.
var ErrNoUpdates = errors.New("no updates to aggregate")

// An Aggregator combines the accepted updates of a round into the next version of its base
// model, by one rule (registry.go names them). Updates must have passed Check against the base.
//
// Rules come in two kinds, told apart by whether the aggregator is also a Folder:
//
//   - a Folder (fedavg) folds each update into running sums as it is added and keeps nothing of
//     it, so the coordinator adds an update the moment it is accepted (aggregation at quorum then
//     only divides) and, after a restart, streams the accepted updates back from their files;
//   - any other Aggregator (median, trimmed_mean) reads every update at once, coordinate by
//     coordinate, and keeps what it is given until Result: the coordinator adds the updates only
//     at aggregation time, read back from disk.
type Aggregator interface {
	// Add adds one update whose trainer claims samples training samples.
	Add(u *File, samples uint64) error
	// Result returns the aggregate, with the base's tensors and dtypes. The aggregator must not
	// be used afterwards.
	Result() (*File, error)
}

// A Folder is an Aggregator whose memory is its running sums, whatever the number of updates
// (see Aggregator): it can also fold in an update streamed from its encoded bytes.
type Folder interface {
	Aggregator
	// AddFrom folds in an update read from r, a safetensors file of size bytes, without holding
	// it in memory.
	AddFrom(r io.Reader, size int64, samples uint64) error
}

// checkTensorSet reports whether u has the base's tensors, in order.
func checkTensorSet(base, u *File) error {
	if len(u.Tensors) != len(base.Tensors) {
		return fmt.Errorf("%w: %d tensors, the base model has %d", ErrTensorSet, len(u.Tensors), len(base.Tensors))
	}
	for i := range base.Tensors {
		b, t := &base.Tensors[i], &u.Tensors[i]
		if b.Name != t.Name || b.DType != t.DType || t.Elements() != b.Elements() {
			return fmt.Errorf("%w: %q does not match the base model", ErrTensorSet, t.Name)
		}
	}
	return nil
}

// coordinatewise is the shared body of the robust rules: it keeps the updates added to it and,
// at Result, sets every coordinate of the aggregate to reduce of that coordinate's values across
// the updates, sorted ascending.
type coordinatewise struct {
	base    *File
	updates []*File
	reduce  func(sorted []float64) float64
}

// Add keeps u for Result; samples do not weigh in a coordinate-wise rule.
func (c *coordinatewise) Add(u *File, _ uint64) error {
	if err := checkTensorSet(c.base, u); err != nil {
		return err
	}
	c.updates = append(c.updates, u)
	return nil
}

// Result reduces every coordinate across the updates.
func (c *coordinatewise) Result() (*File, error) {
	if len(c.updates) == 0 {
		return nil, ErrNoUpdates
	}
	out := &File{Metadata: map[string]string{}}
	col := make([]float64, len(c.updates))
	for i := range c.base.Tensors {
		b := &c.base.Tensors[i]
		t := NewTensor(b.Name, b.DType, b.Shape...)
		for j, n := 0, b.Elements(); j < n; j++ {
			for k, u := range c.updates {
				col[k] = u.Tensors[i].At(j)
			}
			sort.Float64s(col)
			t.Set(j, c.reduce(col))
		}
		out.Tensors = append(out.Tensors, t)
	}
	c.updates = nil
	return out, nil
}
