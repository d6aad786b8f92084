package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestResolveCommand: the program and ./ ../ arguments are resolved against the config's
// folder; bare names, flags, placeholders and absolute paths are left alone.
func TestResolveCommand(t *testing.T) {
	dir := "/etc/cf"
	tests := []struct{ in, want []string }{
		{nil, nil},
		{[]string{"python3", "./Model.py", "--model", "{model}"}, []string{"python3", "/etc/cf/Model.py", "--model", "{model}"}},
		{[]string{"venv/bin/python3", "../shared/Model.py", "Model.py"}, []string{"/etc/cf/venv/bin/python3", "/etc/shared/Model.py", "Model.py"}},
		{[]string{"./train.sh", "--data", "{data}", "/abs/x", "--lr", "0.5"}, []string{"/etc/cf/train.sh", "--data", "{data}", "/abs/x", "--lr", "0.5"}},
		{[]string{"/usr/bin/python3", "-c", "print(1)"}, []string{"/usr/bin/python3", "-c", "print(1)"}},
	}
	for _, tt := range tests {
		if got := ResolveCommand(tt.in, dir); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ResolveCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestLoadResolvesHookCommand: Load resolves train.command against the config file's folder, not
// the working directory, and keeps train.hook_config.
func TestLoadResolvesHookCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.toml")
	os.WriteFile(path, []byte(`[train]
hook = "exec"
command = ["python3", "./model/Model.py", "--model", "{model}", "--config", "{config}"]
hook_config = { holdout = 0.2, note = "x", seed = 3 }
`), 0o600)
	t.Chdir(t.TempDir())
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"python3", filepath.Join(dir, "model", "Model.py"), "--model", "{model}", "--config", "{config}"}
	if !reflect.DeepEqual(cfg.Train.Command, want) {
		t.Errorf("train.command = %q, want %q", cfg.Train.Command, want)
	}
	if cfg.Train.HookConfig["holdout"] != 0.2 || cfg.Train.HookConfig["note"] != "x" || cfg.Train.HookConfig["seed"] != int64(3) {
		t.Errorf("train.hook_config = %#v", cfg.Train.HookConfig)
	}
}

// TestHookConfigValidated: train.hook_config takes scalars under short keys only.
func TestHookConfigValidated(t *testing.T) {
	for _, tt := range []struct{ toml, want string }{
		{`hook_config = { nested = { a = 1 } }`, "train.hook_config.nested: must be a string, a number or a boolean"},
		{`hook_config = { list = [1, 2] }`, "train.hook_config.list"},
		{`hook_config = { "` + strings.Repeat("k", 65) + `" = 1 }`, "must be 1 to 64 characters"},
	} {
		_, err := Parse([]byte("[train]\n" + tt.toml + "\n"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%s) = %v, want an error containing %q", tt.toml, err, tt.want)
		}
	}
	var many strings.Builder
	many.WriteString("[train.hook_config]\n")
	for i := range 33 {
		many.WriteString("k" + strings.Repeat("x", i) + " = 1\n")
	}
	if _, err := Parse([]byte(many.String())); err == nil || !strings.Contains(err.Error(), "at most 32") {
		t.Errorf("33 hook_config keys: %v, want refused", err)
	}
}
