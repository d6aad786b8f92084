package devnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/califusion/califusion/node/fl"
	"github.com/califusion/califusion/node/nodeproc"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// DemoPrice is the initial model's price in ledger base units.
const DemoPrice = "100000"

// spreadModel publishes the initial model on the publisher, naming coords as the lineage's
// coordinators (threshold of them release a key), fetches it on every trainer at once, and has
// every trainer pay, unlock and export it (the exported bytes must be the published ones).
func spreadModel(ctx context.Context, dir string, pub *nodeproc.Node, coords []*nodeproc.Node, threshold int, trainers []*nodeproc.Node, t *Timings) (*ModelReport, error) {
	path := filepath.Join(dir, "initial-model.safetensors")
	raw, err := fl.NewLogReg(DigitsFeatures, DigitsClasses).Encode()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return nil, err
	}
	want := sha256Hex(raw)
	began := time.Now()
	var named []string
	for _, c := range coords {
		named = append(named, c.Info().PeerID)
	}
	res, err := pub.Client().ModelPublish(ctx, adminrpc.PublishParams{Path: path, Name: "digits-logreg", Price: DemoPrice,
		Description: "multinomial logistic regression on 8×8 digits", Coordinators: named, Threshold: uint(threshold)})
	if err != nil {
		return nil, fmt.Errorf("publish the initial model: %w", err)
	}
	t.PublishSeconds = time.Since(began).Seconds()
	rep := &ModelReport{ModelID: res.ModelID, Size: res.Size, Chunks: res.Chunks, Anchored: res.Anchored, Fetches: make([]FetchReport, len(trainers))}

	began = time.Now()
	err = onEach(trainers, func(i int, tr *nodeproc.Node) error {
		start := time.Now()
		err := fetchOn(ctx, tr, res.ModelID)
		rep.Fetches[i] = FetchReport{Node: tr.Name, Seconds: time.Since(start).Seconds()}
		return err
	})
	if err != nil {
		return nil, err
	}
	t.FetchSeconds = time.Since(began).Seconds()
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
		exp, err := tr.Client().ModelExport(ctx, res.ModelID, filepath.Join(filepath.Dir(tr.Datadir), tr.Name+"-initial-model.export"))
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

// onEach runs fn for every node at once and joins their errors.
func onEach(nodes []*nodeproc.Node, fn func(i int, n *nodeproc.Node) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = fn(i, n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fetchOn waits until n's catalog has the model, fetches it, and waits for the job to finish.
func fetchOn(ctx context.Context, n *nodeproc.Node, modelID string) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := nodeproc.WaitFor(wctx, func() error { _, err := n.Client().ModelGet(wctx, modelID); return err }); err != nil {
		return fmt.Errorf("%s never learned of model %s: %w", n.Name, modelID, err)
	}
	job, err := n.Client().ModelFetch(ctx, modelID)
	if err != nil {
		return fmt.Errorf("%s: fetch: %w", n.Name, err)
	}
	fctx, cancel2 := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel2()
	return nodeproc.WaitFor(fctx, func() error {
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
