package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// hasBlob reports whether n keeps a blob file of model.
func hasBlob(n *harness.Node, model string) bool {
	_, err := os.Stat(filepath.Join(n.Datadir, "blobs", model+".blob"))
	return err == nil
}

// TestStorageGCAndCap: two trainers hold v1 of a lineage; one round makes v2, which both fetch.
// On the first, `repo gc` removes v1's ciphertext (its manifest stays) and keeps v2, the latest;
// on the second, configured with a tiny storage cap, the check after the fetch does the same
// without any gc call, and keeps v2 though it is still over the cap. On the coordinator, which
// published both versions, gc removes nothing, and model rm refuses without --force.
func TestStorageGCAndCap(t *testing.T) {
	rn := newRoundNet(t, 2, false, func(i int, cfg *config.Config) {
		if i == 1 {
			cfg.Store.MaxBlobBytes = 1
		}
	})
	ctx := t.Context()
	manual, capped := rn.trainers[0], rn.trainers[1]
	v1 := rn.model
	for _, n := range []*harness.Node{manual, capped, rn.coord} {
		if !hasBlob(n, v1) {
			t.Fatalf("%s holds no blob of v1 after the setup", n.Name)
		}
	}
	// The capped node is over its cap with v1 alone, the latest: kept, with a warning.
	waitFor(t, 30*time.Second, func() error {
		if !strings.Contains(capped.Logs(), "storage cap exceeded") {
			return errf("no over-cap warning on %s yet", capped.Name)
		}
		return nil
	})
	if !hasBlob(capped, v1) {
		t.Fatal("the storage cap removed v1 while it was the latest version held")
	}

	// One round: v2.
	open, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: v1, MinUpdates: 1, Deadline: "2m", Rule: "fedavg", ClipNorm: 50})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := manual.Client().TrainRun(ctx, adminrpc.TrainRunParams{RoundID: open.RoundID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manual.Client().UpdateSubmit(ctx, open.RoundID, tr.UpdateID); err != nil {
		t.Fatal(err)
	}
	closed, err := rn.coord.Client().RoundClose(ctx, open.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	v2 := closed.ModelID
	for _, n := range []*harness.Node{manual, capped} {
		waitFor(t, 30*time.Second, func() error { _, err := n.Client().ModelGet(ctx, v2); return err })
		job, err := n.Client().ModelFetch(ctx, v2)
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, n, job.JobID, 30*time.Second)
	}

	// The cap removes v1 on its own after the fetch of v2; v2 stays.
	waitFor(t, 30*time.Second, func() error {
		if hasBlob(capped, v1) {
			return errf("v1's blob is still on the capped node")
		}
		return nil
	})
	if !hasBlob(capped, v2) {
		t.Error("the storage cap removed v2, the latest version")
	}

	// repo gc on the other trainer.
	var st adminrpc.RepoStat
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", manual.Datadir, "--json", "repo", "stat")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Models < 2 || st.Complete != 2 || st.BlobBytes == 0 || st.ReclaimableBytes == 0 || st.MaxBlobBytes != 0 || st.KeysHeld < 1 {
		t.Errorf("repo stat before gc = %+v; want 2 complete models, blob bytes, something reclaimable, no cap, a key", st)
	}
	var res adminrpc.RepoGCResult
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", manual.Datadir, "--json", "repo", "gc")), &res); err != nil {
		t.Fatal(err)
	}
	if res.Models != 1 || len(res.Removed) != 1 || res.Removed[0].ModelID != v1 || res.FreedBytes == 0 || res.FreedBytes != st.ReclaimableBytes {
		t.Fatalf("repo gc = %+v; want v1 removed with the %d reclaimable bytes freed", res, st.ReclaimableBytes)
	}
	if hasBlob(manual, v1) || !hasBlob(manual, v2) {
		t.Errorf("after repo gc: v1 blob %v, v2 blob %v; want v1 gone, v2 kept", hasBlob(manual, v1), hasBlob(manual, v2))
	}
	m, err := manual.Client().ModelGet(ctx, v1)
	if err != nil || m.LocalChunks != 0 {
		t.Errorf("model_get(v1) after gc = local chunks %d, %v; want the manifest kept with no chunks", m.LocalChunks, err)
	}
	if out := cli(t, false, "--datadir", manual.Datadir, "repo", "gc"); !strings.Contains(out, "freed 0 B in 0 models") {
		t.Errorf("a second repo gc:\n%s\nwant nothing freed", out)
	}

	// The coordinator published both versions: gc keeps them, model rm needs --force.
	var coordRes adminrpc.RepoGCResult
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", rn.coord.Datadir, "--json", "repo", "gc")), &coordRes); err != nil {
		t.Fatal(err)
	}
	if coordRes.Models != 0 || !hasBlob(rn.coord, v1) || !hasBlob(rn.coord, v2) {
		t.Errorf("repo gc on the publisher = %+v; want nothing removed, both blobs kept", coordRes)
	}
	kept := map[string]string{}
	for _, k := range coordRes.Kept {
		kept[k.ModelID] = k.Reason
	}
	if kept[v1] != "published" || kept[v2] != "published" {
		t.Errorf("repo gc on the publisher kept %v, want both versions as published", kept)
	}
	if _, err := rn.coord.Client().ModelRm(ctx, adminrpc.ModelRmParams{ModelID: v1}); adminrpc.CodeOf(err) != adminrpc.CodeConflict {
		t.Errorf("model_rm of a published model without force = %v, want conflict (1010)", err)
	}
	if out := cli(t, true, "--datadir", rn.coord.Datadir, "model", "rm", v1, "--forget", "--force"); !strings.Contains(out, "parent of version") {
		t.Errorf("model rm --forget of v2's parent:\n%s\nwant a refusal naming the child", out)
	}
	if !hasBlob(rn.coord, v1) {
		t.Error("a refused model rm --forget removed v1's blob")
	}
}
