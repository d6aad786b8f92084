package fl

import (
	"fmt"
	"math"
)

// RuleTrimmedMean takes the mean of each coordinate across the updates after dropping a fraction
// (Options.Trim, DefaultTrim when unset) of the lowest and of the highest values; sample counts
// do not weigh in.
const RuleTrimmedMean = "trimmed_mean"

// DefaultTrim is the fraction trimmed_mean drops at each end of every coordinate when
// Options.Trim is 0.
const DefaultTrim = 0.2

func init() {
	Register(RuleTrimmedMean, func(base *File, o Options) (Aggregator, error) {
		trim := o.Trim
		if trim == 0 {
			trim = DefaultTrim
		}
		if trim < 0 || trim >= 0.5 || math.IsNaN(trim) {
			return nil, fmt.Errorf("trim fraction %v must be in [0, 0.5)", trim)
		}
		return &coordinatewise{base: base, reduce: func(col []float64) float64 {
			k := int(math.Floor(trim * float64(len(col))))
			kept := col[k : len(col)-k]
			var sum float64
			for _, v := range kept {
				sum += v
			}
			return sum / float64(len(kept))
		}}, nil
	})
}
