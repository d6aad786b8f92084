package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/rounds"
)

// auditDevnet checks a finished devnet story's datadirs (every node stopped): no coordinator
// stores a whole content key (its keyring holds shares only) and none of its files or its log
// holds any content key's bytes or any of the trainers' updates, although every key is known to
// the test (the publisher's and the trainers' keyrings hold them all) and every update is too
// (the trainers' updates folders). The same search finds a trainer's update in its own datadir,
// so it can find what it looks for.
func auditDevnet(t *testing.T, dir string, rep *devnet.Report) {
	t.Helper()
	var coordinators, holders []devnet.NodeReport
	for _, n := range rep.Nodes {
		switch {
		case strings.HasPrefix(n.Name, "coordinator"):
			coordinators = append(coordinators, n)
		default:
			holders = append(holders, n)
		}
	}
	if len(coordinators) == 0 {
		t.Fatal("the devnet report names no coordinator")
	}
	// Every key the test knows of: the publisher's and the trainers'.
	known := map[content.ModelID]content.Key{}
	for _, n := range holders {
		st, kr := openKeyringAt(t, n.Name, n.Datadir)
		err := kr.StoredKeys(func(id content.ModelID, k content.Key) error { known[id] = k; return nil })
		st.Close()
		if err != nil {
			t.Fatalf("%s's keys: %v", n.Name, err)
		}
	}
	if len(known) < 2 {
		t.Fatalf("the publisher and trainers hold %d keys, want the initial model's and the versions'", len(known))
	}
	var keyBytes [][]byte
	for _, k := range known {
		keyBytes = append(keyBytes, append([]byte(nil), k[:]...))
	}
	// Every update the trainers trained.
	var models []*fl.File
	var trainerDir string
	for _, n := range holders {
		files, _ := filepath.Glob(filepath.Join(n.Datadir, rounds.UpdatesDir, "*.safetensors"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := fl.Parse(raw)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			models = append(models, m)
			trainerDir = n.Datadir
		}
	}
	if len(models) == 0 {
		t.Fatal("no trainer holds an update")
	}
	windows := updateWindows(t, models)
	if got := filesHolding(trainerDir, nil, windows); len(got) == 0 {
		t.Fatalf("the search finds no update even in a trainer's own datadir %s", trainerDir)
	}
	for _, c := range coordinators {
		st, kr := openKeyringAt(t, c.Name, c.Datadir)
		err := kr.StoredKeys(func(id content.ModelID, _ content.Key) error {
			t.Errorf("%s stores the whole key of model %x", c.Name, id[:8])
			return nil
		})
		st.Close()
		if err != nil {
			t.Fatalf("%s's keys: %v", c.Name, err)
		}
		logs := []string{c.Datadir + ".log"}
		if got := filesHolding(c.Datadir, logs, keyBytes); len(got) != 0 {
			t.Errorf("%s's datadir or log holds a content key's bytes: %v", c.Name, got)
		}
		if got := filesHolding(c.Datadir, logs, windows); len(got) != 0 {
			t.Errorf("%s's datadir or log holds a trainer's update: %v", c.Name, got)
		}
	}
}
