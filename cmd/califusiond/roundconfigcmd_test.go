package main

import (
	"reflect"
	"testing"

	"github.com/spf13/pflag"
)

// TestConfigFlag: --config key=value repeats into one map, values parsed as bool, then number,
// else string; a malformed or repeated entry is refused.
func TestConfigFlag(t *testing.T) {
	var m map[string]any
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	roundConfigFlag(fs, &m)
	if err := fs.Parse([]string{"--config", "augment=true", "--config", "holdout=0.1", "--config", "optimizer=adamw", "--config", "n=1", "--config", "note=a=b", "--config", "x=inf"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"augment": true, "holdout": 0.1, "optimizer": "adamw", "n": 1.0, "note": "a=b", "x": "inf"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("--config = %v, want %v", m, want)
	}
	for _, bad := range [][]string{{"--config", "novalue"}, {"--config", "=1"}, {"--config", "a=1", "--config", "a=2"}} {
		var m map[string]any
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		roundConfigFlag(fs, &m)
		if err := fs.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted: %v", bad, m)
		}
	}
}
