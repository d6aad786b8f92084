package fl

// RuleMedian takes the median of each coordinate across the updates (the mean of the two middle
// values for an even count); sample counts do not weigh in.
const RuleMedian = "median"

func init() {
	Register(RuleMedian, func(base *File, _ Options) (Aggregator, error) {
		return &coordinatewise{base: base, reduce: median}, nil
	})
}

// median returns the median of sorted values.
func median(col []float64) float64 {
	m := len(col) / 2
	if len(col)%2 == 0 {
		return (col[m-1] + col[m]) / 2
	}
	return col[m]
}
