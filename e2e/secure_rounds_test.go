package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/secagg"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// secureClip is the e2e rounds' clamp on a delta coordinate: above every trained weight here
// (the test checks), so the secure aggregate must equal plain FedAvg within quantisation.
const secureClip = 16

// trainAll has every trainer in trs train for round and submit; it returns their updates (read
// from each trainer's updates folder) and sample counts.
func trainAll(t *testing.T, round string, trs []*harness.Node, secure bool) ([]*fl.File, []uint64) {
	t.Helper()
	var models []*fl.File
	var samples []uint64
	for _, tr := range trs {
		res, err := tr.Client().TrainRun(t.Context(), adminrpc.TrainRunParams{RoundID: round})
		if err != nil {
			t.Fatalf("%s: train_run: %v", tr.Name, err)
		}
		raw, err := os.ReadFile(filepath.Join(tr.Datadir, "updates", res.UpdateID+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := fl.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		models, samples = append(models, f), append(samples, res.Samples)
		sub, err := tr.Client().UpdateSubmit(t.Context(), round, res.UpdateID)
		if err != nil || !sub.Accepted || sub.Secure != secure {
			t.Fatalf("%s: update_submit = %+v, %v; want accepted, secure %v", tr.Name, sub, err, secure)
		}
	}
	return models, samples
}

// waitRoundState waits until the coordinator reports round in state.
func waitRoundState(t *testing.T, coord *harness.Node, model, round, state string) adminrpc.RoundInfo {
	t.Helper()
	var info adminrpc.RoundInfo
	waitFor(t, 2*time.Minute, func() error {
		rs, err := coord.Client().RoundList(t.Context(), model)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.RoundID == round {
				info = r
				if r.State == state {
					return nil
				}
				return errf("round %s is %s (%s), want %s", round, r.State, r.Error, state)
			}
		}
		return errf("round %s not listed", round)
	})
	return info
}

// updateWindows are, for each update, the 64-byte window of its tensor data with the most
// non-zero elements (at least 8 of its 16, so it cannot match the runs of zero weights every
// model of the lineage shares: digits' border pixels are always 0).
func updateWindows(t *testing.T, models []*fl.File) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range models {
		var best []byte
		bestN := 0
		for _, tn := range m.Tensors {
			for off := 0; off+64 <= len(tn.Data); off += 4 {
				w, n := tn.Data[off:off+64], 0
				for i := 0; i < 64; i += 4 {
					if binary.LittleEndian.Uint32(w[i:]) != 0 {
						n++
					}
				}
				if n > bestN {
					best, bestN = w, n
				}
			}
		}
		if bestN < 8 {
			t.Fatalf("an update has no 64-byte window with 8 non-zero elements (best %d)", bestN)
		}
		out = append(out, best)
	}
	return out
}

// filesHolding returns the files under root (and the extra files) that hold a window, as bytes
// or as hex.
func filesHolding(root string, extra []string, windows [][]byte) []string {
	var files []string
	filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	var out []string
	for _, f := range append(files, extra...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range windows {
			if bytes.Contains(b, w) || bytes.Contains(b, []byte(hex.EncodeToString(w))) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// TestSecureRounds: a publisher+coordinator and four trainers on the digits data. A secure round
// completes, and the new version a trainer exports equals base + FedAvg of the four trainers'
// deltas within the quantisation bound; a second secure round in which one trainer is killed
// (failpoint secagg-shares-sent) after sending its shares completes with three contributors and
// lists the killed one as its dropout. The coordinator's datadir and log never hold any of the
// trainers' update bytes. A plain round on the same network gives the time to compare with.
func TestSecureRounds(t *testing.T) {
	rn := newRoundNet(t, 4, false, nil)
	ctx := t.Context()
	p := adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 4, Deadline: "10m", Rule: "fedavg", Secure: true, Clip: secureClip}

	began := time.Now()
	open, err := rn.coord.Client().RoundOpen(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	models, samples := trainAll(t, open.RoundID, rn.trainers, true)
	info := waitRoundState(t, rn.coord, rn.model, open.RoundID, "done")
	secureTime := time.Since(began)
	rep, err := rn.coord.Client().RoundReport(ctx, open.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Secure || len(rep.Contributors) != 4 || len(rep.Dropouts) != 0 || rep.SecAgg == nil || rep.NewModel != info.NewModel {
		t.Fatalf("secure report = %+v; want 4 contributors, no dropout, the params and the new model", rep)
	}
	// The reference: plain FedAvg of the same updates.
	want := fl.NewFedAvg(rn.base)
	maxDelta := 0.0
	for i, m := range models {
		if err := want.Add(m, samples[i]); err != nil {
			t.Fatal(err)
		}
		for _, tn := range m.Tensors {
			for j := range tn.Elements() {
				maxDelta = math.Max(maxDelta, math.Abs(tn.At(j))) // the base is all zeros
			}
		}
	}
	if maxDelta >= secureClip {
		t.Fatalf("a trained weight of %g is beyond the round's clip %d: the reference would not hold", maxDelta, secureClip)
	}
	wantFile, _ := want.Result()
	// A trainer gets the new version (its lineage payment releases it) and exports it.
	tr := rn.trainers[0]
	waitFor(t, 30*time.Second, func() error { _, err := tr.Client().ModelGet(ctx, info.NewModel); return err })
	job, err := tr.Client().ModelFetch(ctx, info.NewModel)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, tr, job.JobID, 30*time.Second)
	if _, err := tr.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: info.NewModel}); err != nil {
		t.Fatalf("trainer unlocking the secure aggregate: %v", err)
	}
	out := filepath.Join(t.TempDir(), "secure.safetensors")
	if _, err := tr.Client().ModelExport(ctx, info.NewModel, out); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(out)
	got, err := fl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	bound := secagg.QuantisationBound(secagg.Params{Neighbours: rep.SecAgg.Neighbours, Threshold: rep.SecAgg.Threshold, Clip: rep.SecAgg.Clip, Bits: rep.SecAgg.Bits, MaxWeight: rep.SecAgg.MaxWeight}) + 1e-5
	worst := 0.0
	for i := range wantFile.Tensors {
		w, g := &wantFile.Tensors[i], got.Tensor(wantFile.Tensors[i].Name)
		if g == nil || g.Elements() != w.Elements() {
			t.Fatalf("the aggregate lacks tensor %s", w.Name)
		}
		for j := range w.Elements() {
			worst = math.Max(worst, math.Abs(g.At(j)-w.At(j)))
		}
	}
	if worst > bound {
		t.Errorf("the secure aggregate differs from plain FedAvg by up to %g, beyond the bound %g", worst, bound)
	}
	t.Logf("secure round of 4: %v; the aggregate within %g of plain FedAvg (bound %g)", secureTime.Round(time.Millisecond), worst, bound)
	// Each trainer's own report says it contributed to that version.
	for _, tr := range rn.trainers {
		waitFor(t, 30*time.Second, func() error {
			r, err := tr.Client().RoundReport(ctx, open.RoundID)
			if err != nil || r.NewModel != info.NewModel || len(r.Participants) != 1 || !r.Participants[0].Accepted {
				return errf("%s: report = %+v, %v; want contributed to %s", tr.Name, r, err, info.NewModel)
			}
			return nil
		})
	}

	// A plain round of the same four, for the time.
	began = time.Now()
	plain, err := rn.coord.Client().RoundOpen(ctx, adminrpc.RoundOpenParams{ModelID: rn.model, MinUpdates: 4, Deadline: "10m", Rule: "fedavg"})
	if err != nil {
		t.Fatal(err)
	}
	trainAll(t, plain.RoundID, rn.trainers, false)
	waitRoundState(t, rn.coord, rn.model, plain.RoundID, "done")
	t.Logf("plain round of 4: %v (secure: %v)", time.Since(began).Round(time.Millisecond), secureTime.Round(time.Millisecond))

	// The second secure round: the last trainer dies right after sending its shares.
	victim := rn.trainers[3]
	if err := victim.Stop(); err != nil {
		t.Fatal(err)
	}
	victim.Env = []string{"CALIFUSION_CRASH_AT=secagg-shares-sent"}
	rn.c.start(victim, "--bootstrap", rn.coord.P2PAddr())
	waitHeard(t, rn.coord, victim)
	open2, err := rn.coord.Client().RoundOpen(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	models2, _ := trainAll(t, open2.RoundID, rn.trainers, true)
	waitRoundState(t, rn.coord, rn.model, open2.RoundID, "done")
	waitFor(t, 30*time.Second, func() error {
		if _, err := victim.Client().NodeInfo(ctx); err == nil {
			return errf("%s is still answering; the failpoint should have ended it after its shares", victim.Name)
		}
		return nil
	})
	victim.Kill() // reap the crashed process
	rep2, err := rn.coord.Client().RoundReport(ctx, open2.RoundID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Contributors) != 3 || len(rep2.Dropouts) != 1 || rep2.Dropouts[0] != victim.Info().PeerID || slices.Contains(rep2.Contributors, victim.Info().PeerID) {
		t.Errorf("report of the round with a killed trainer: contributors %v, dropouts %v; want 3 and %s", rep2.Contributors, rep2.Dropouts, victim.Info().PeerID)
	}

	// None of the secure rounds' updates is on the coordinator's disk or in its log, and the
	// search finds them where they are: in the trainers' datadirs.
	windows := updateWindows(t, append(models, models2...))
	if found := filesHolding(rn.coord.Datadir, []string{rn.coord.LogPath()}, windows); len(found) != 0 {
		t.Errorf("the coordinator holds bytes of a secure round's update in %v", found)
	}
	if found := filesHolding(rn.trainers[0].Datadir, nil, windows[:1]); len(found) == 0 {
		t.Error("the search does not find trainer 0's update in its own datadir")
	}
}
