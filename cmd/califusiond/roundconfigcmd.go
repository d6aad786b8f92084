package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// configFlag is --config key=value, repeatable, filling a round's free-form config map: the
// value is a boolean (true or false), else a number, else a string.
type configFlag struct{ m *map[string]any }

func (f configFlag) String() string {
	if f.m == nil || len(*f.m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(*f.m))
	for k := range *f.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, (*f.m)[k])
	}
	return strings.Join(parts, ",")
}

func (f configFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("--config takes key=value, not %q", s)
	}
	if *f.m == nil {
		*f.m = map[string]any{}
	}
	if _, dup := (*f.m)[k]; dup {
		return fmt.Errorf("--config %s is given twice", k)
	}
	(*f.m)[k] = configValue(v)
	return nil
}

func (configFlag) Type() string { return "key=value" }

// configValue parses a --config value: true or false, else a finite number, else the string.
func configValue(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(n, 0) && !math.IsNaN(n) {
		return n
	}
	return v
}

// roundConfigFlag adds --config to a command that opens rounds.
func roundConfigFlag(fs *pflag.FlagSet, m *map[string]any) {
	fs.Var(configFlag{m}, "config", "round config entry key=value for the trainers' exec hooks ({config}'s \"config\" map; repeatable; value: true/false, a number, else a string)")
}
