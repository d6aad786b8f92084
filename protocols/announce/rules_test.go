package announce

import (
	"errors"
	"slices"
	"testing"

	"github.com/califusion/califusion/node/fl"
)

// testRule is an aggregation rule registered only in this package's tests: a rule added in one
// file of node/fl is accepted by Check with no list of names to edit here.
const testRule = "announce_test_rule"

func init() {
	fl.Register(testRule, func(base *fl.File, o fl.Options) (fl.Aggregator, error) {
		return fl.NewAggregator(fl.RuleMedian, base, o)
	})
}

// TestRoundRulesComeFromTheRegistry: Check accepts every registered rule, the test-only one
// included, and refuses any other name.
func TestRoundRulesComeFromTheRegistry(t *testing.T) {
	coord := newPeer(t)
	for _, rule := range fl.Rules() {
		r := goodRound(coord)
		r.Rule = rule
		if err := r.Check(); err != nil {
			t.Errorf("Check(rule %q) = %v, want nil", rule, err)
		}
	}
	for _, rule := range []string{"", "mean", "FedAvg"} {
		r := goodRound(coord)
		r.Rule = rule
		if err := r.Check(); !errors.Is(err, ErrMalformed) {
			t.Errorf("Check(rule %q) = %v, want ErrMalformed", rule, err)
		}
	}
	if !slices.Contains(fl.Rules(), testRule) {
		t.Errorf("fl.Rules() = %v, want it to hold the test-only %q", fl.Rules(), testRule)
	}
}
