package devnet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/califusion/califusion/e2e/harness"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// DemoModelSize is the size of the demo model the devnet publishes.
const DemoModelSize = 16 << 20

// DemoPrice is the demo model's price in ledger base units.
const DemoPrice = "100000"

// spreadModel publishes a demo model on the publisher and fetches it on every trainer at once.
func spreadModel(ctx context.Context, dir string, pub *harness.Node, trainers []*harness.Node, t *Timings) (*ModelReport, error) {
	path := filepath.Join(dir, "demo-model.bin")
	if err := writeDemoModel(path); err != nil {
		return nil, err
	}
	began := time.Now()
	res, err := pub.Client().ModelPublish(ctx, adminrpc.PublishParams{Path: path, Name: "demo-model", Price: DemoPrice, Description: "devnet demo model"})
	if err != nil {
		return nil, fmt.Errorf("publish demo model: %w", err)
	}
	t.PublishSeconds = time.Since(began).Seconds()
	rep := &ModelReport{ModelID: res.ModelID, Size: res.Size, Chunks: res.Chunks, Anchored: res.Anchored, Fetches: make([]FetchReport, len(trainers))}

	began = time.Now()
	errs := make([]error, len(trainers))
	var wg sync.WaitGroup
	for i, tr := range trainers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			errs[i] = fetchOn(ctx, tr, res.ModelID)
			secs := time.Since(start).Seconds()
			rep.Fetches[i] = FetchReport{Node: tr.Name, Seconds: secs, MBps: float64(res.Size) / 1e6 / secs}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	t.FetchSeconds = time.Since(began).Seconds()
	// Every trainer pays, unlocks the key from the coordinator, and exports the exact bytes.
	want, err := fileSHA256(path)
	if err != nil {
		return nil, err
	}
	began = time.Now()
	for i, tr := range trainers {
		pay, err := tr.Client().ModelPay(ctx, res.ModelID)
		if err != nil {
			return nil, fmt.Errorf("%s: model_pay: %w", tr.Name, err)
		}
		b := pay.BlockIndex
		if _, err := tr.Client().ModelUnlock(ctx, adminrpc.UnlockParams{ModelID: res.ModelID, Ledger: pay.Ledger, BlockIndex: &b}); err != nil {
			return nil, fmt.Errorf("%s: model_unlock: %w", tr.Name, err)
		}
		exp, err := tr.Client().ModelExport(ctx, res.ModelID, filepath.Join(tr.Datadir, "demo-model.export"))
		if err != nil {
			return nil, fmt.Errorf("%s: model_export: %w", tr.Name, err)
		}
		if exp.SHA256 != want {
			return nil, fmt.Errorf("%s exported %s, want the published bytes %s", tr.Name, exp.SHA256, want)
		}
		rep.Fetches[i].PaidBlock, rep.Fetches[i].Paid, rep.Fetches[i].ExportOK = pay.BlockIndex, pay.Amount, true
	}
	t.UnlockSeconds = time.Since(began).Seconds()
	// Every trainer audits the anchor through its own (lagging) Calimero member.
	for _, tr := range trainers {
		st, err := tr.Client().AnchorVerify(ctx, res.ModelID)
		if err != nil {
			return nil, fmt.Errorf("%s: anchor_verify: %w", tr.Name, err)
		}
		if st.State == "verified" {
			rep.AnchorVerifiedBy++
		}
	}
	return rep, nil
}

// fetchOn waits until n's catalog has the model, fetches it, and waits for the job to finish.
func fetchOn(ctx context.Context, n *harness.Node, modelID string) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := harness.WaitFor(wctx, func() error { _, err := n.Client().ModelGet(wctx, modelID); return err }); err != nil {
		return fmt.Errorf("%s never learned of model %s: %w", n.Name, modelID, err)
	}
	job, err := n.Client().ModelFetch(ctx, modelID)
	if err != nil {
		return fmt.Errorf("%s: fetch: %w", n.Name, err)
	}
	fctx, cancel2 := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel2()
	return harness.WaitFor(fctx, func() error {
		st, err := n.Client().JobStatus(fctx, job.JobID)
		switch {
		case err != nil:
			return err
		case st.State == "failed":
			return fmt.Errorf("%s: fetch failed: %s", n.Name, st.Error)
		case st.State != "done":
			return fmt.Errorf("%s: fetch %s", n.Name, st.State)
		}
		return nil
	})
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// writeDemoModel writes deterministic pseudo-random bytes, so every devnet run publishes the
// same content (under a fresh key, so a new ModelID).
func writeDemoModel(path string) error {
	seed := sha256.Sum256([]byte("califusion devnet demo model"))
	r := rand.NewChaCha8(seed)
	buf := make([]byte, DemoModelSize)
	r.Read(buf)
	return os.WriteFile(path, buf, 0o600)
}
