package fl

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// ErrUnknownRule is returned for a rule name no file registered.
var ErrUnknownRule = errors.New("unknown aggregation rule")

// Options are what a round tells its aggregator; a rule reads the fields it needs.
type Options struct {
	// MaxWeight is the per-update weight ceiling of the weighted rules: an update weighs
	// min(samples, MaxWeight), the round's per-trainer sample ceiling (0: none).
	MaxWeight uint64
	// Trim is the fraction trimmed_mean drops at each end of every coordinate, in [0, 0.5)
	// (0: DefaultTrim).
	Trim float64
}

// A Constructor starts an aggregation of updates of base by one rule.
type Constructor func(base *File, o Options) (Aggregator, error)

// rules is the registry: every aggregation rule, by the name rounds carry on the wire and in the
// store. Each rule's file registers itself from init, so adding a rule is adding one file.
var rules = struct {
	sync.RWMutex
	m map[string]Constructor
}{m: map[string]Constructor{}}

// Register adds the rule name, built by c. It is meant for init functions and panics if name is
// empty or taken, or c is nil.
func Register(name string, c Constructor) {
	rules.Lock()
	defer rules.Unlock()
	if name == "" || c == nil {
		panic("fl: Register needs a rule name and a constructor")
	}
	if _, dup := rules.m[name]; dup {
		panic("fl: aggregation rule " + name + " is registered twice")
	}
	rules.m[name] = c
}

// NewAggregator starts an aggregation of updates of base by the rule name.
func NewAggregator(name string, base *File, o Options) (Aggregator, error) {
	rules.RLock()
	c := rules.m[name]
	rules.RUnlock()
	if c == nil {
		return nil, unknownRule(name)
	}
	return c(base, o)
}

// Rules returns the names of the registered rules, sorted.
func Rules() []string {
	rules.RLock()
	defer rules.RUnlock()
	names := make([]string, 0, len(rules.m))
	for name := range rules.m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ValidRule returns nil if name is a registered rule, and otherwise an ErrUnknownRule that
// names the known ones.
func ValidRule(name string) error {
	rules.RLock()
	_, ok := rules.m[name]
	rules.RUnlock()
	if !ok {
		return unknownRule(name)
	}
	return nil
}

// RuleList returns the registered rule names as prose: "fedavg, median or trimmed_mean".
func RuleList() string {
	names := Rules()
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func unknownRule(name string) error {
	return fmt.Errorf("%w %q: use %s", ErrUnknownRule, name, RuleList())
}
