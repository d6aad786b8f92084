package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ResolveCommand resolves the paths of an exec hook's command against dir (the config file's
// folder), so a hook runs the same whatever the daemon's working directory:
//   - the program (first element) when it is relative and contains a slash ("./train.sh",
//     "venv/bin/python3"); a bare name ("python3") is looked up in PATH as a shell would;
//   - every other element that starts with "./" or "../" ("./Model.py", "../data/x.csv").
//
// Everything else (flags, numbers, absolute paths, {placeholders}, "Model.py") is passed as
// written: there is no telling a bare word from a file name, so write "./Model.py" for a file
// next to the config.
func ResolveCommand(cmd []string, dir string) []string {
	if len(cmd) == 0 {
		return cmd
	}
	out := make([]string, len(cmd))
	for i, a := range cmd {
		switch {
		case i == 0 && !filepath.IsAbs(a) && strings.ContainsRune(a, '/') && !strings.Contains(a, "{"):
			out[i] = filepath.Join(dir, a)
		case i > 0 && (strings.HasPrefix(a, "./") || strings.HasPrefix(a, "../")):
			out[i] = filepath.Join(dir, a)
		default:
			out[i] = a
		}
	}
	return out
}

// Bounds of train.hook_config.
const (
	maxHookConfigKeys   = 32
	maxHookConfigKeyLen = 64
	maxHookConfigValLen = 1024
)

// validateHookConfig checks train.hook_config: few, short keys with scalar values.
func (t Train) validateHookConfig() []error {
	var errs []error
	if len(t.HookConfig) > maxHookConfigKeys {
		errs = append(errs, fmt.Errorf("train.hook_config: has %d keys, at most %d are allowed", len(t.HookConfig), maxHookConfigKeys))
	}
	for k, v := range t.HookConfig {
		if k == "" || len(k) > maxHookConfigKeyLen {
			errs = append(errs, fmt.Errorf("train.hook_config: key %q must be 1 to %d characters", k, maxHookConfigKeyLen))
		}
		switch x := v.(type) {
		case bool, int, int64, float64:
		case string:
			if len(x) > maxHookConfigValLen {
				errs = append(errs, fmt.Errorf("train.hook_config.%s: a string value is at most %d bytes", k, maxHookConfigValLen))
			}
		default:
			errs = append(errs, fmt.Errorf("train.hook_config.%s: must be a string, a number or a boolean, not %T", k, v))
		}
	}
	return errs
}
