package node

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/fetch"
	"github.com/califusion/califusion/node/internal/fsutil"
	"github.com/califusion/califusion/node/jobs"
	"github.com/califusion/califusion/node/publish"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/libp2p/go-libp2p/core/peer"
)

func (n *Node) registerModelRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "model_publish", n.rpcModelPublish)
	adminrpc.Handle(s, "model_list", n.rpcModelList)
	adminrpc.Handle(s, "model_get", n.rpcModelGet)
	adminrpc.Handle(s, "model_fetch", n.rpcModelFetch)
	adminrpc.Handle(s, "job_status", n.rpcJobStatus)
	adminrpc.Handle(s, "model_export", n.rpcModelExport)
	adminrpc.Handle(s, "anchor_verify", n.rpcAnchorVerify)
}

func (n *Node) rpcAnchorVerify(ctx context.Context, p adminrpc.ModelIDParams) (adminrpc.AnchorState, error) {
	r, err := n.lookup(ctx, p.ModelID)
	if err != nil {
		return adminrpc.AnchorState{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st := adminrpc.AnchorState{Key: calimero.AnchorKey(r.ID)}
	state, err := n.anchoring.Check(cctx, r.ID, r.Signed)
	switch {
	case state == "" && err != nil:
		return st, &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "the Calimero node could not be read: check calimero.url and that merod runs", Data: err.Error()}
	case err != nil:
		st.Error = err.Error()
	}
	st.State = state
	return st, nil
}

func (n *Node) rpcModelPublish(ctx context.Context, p adminrpc.PublishParams) (adminrpc.PublishResult, error) {
	var coords []peer.ID
	if p.Coordinators != nil {
		coords = []peer.ID{}
		for _, s := range p.Coordinators {
			id, err := peer.Decode(s)
			if err != nil {
				return adminrpc.PublishResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "coordinator %q is not a peer ID", s)
			}
			if !slices.Contains(coords, id) {
				coords = append(coords, id)
			}
		}
	}
	rec, escrowed, err := n.publish.PublishCounted(ctx, publish.Params{Path: p.Path, Name: p.Name, Description: p.Description, Price: p.Price, ChunkSize: p.ChunkSize, Coordinators: coords, Threshold: p.Threshold})
	if err != nil {
		return adminrpc.PublishResult{}, err
	}
	return adminrpc.PublishResult{
		ModelID: hex.EncodeToString(rec.ID[:]), Root: hex.EncodeToString(rec.Manifest.Root),
		Size: rec.Manifest.Size, Chunks: rec.Manifest.Chunks,
		Anchored: n.anchoring.Known(rec.ID) == calimero.StateVerified,
		Escrowed: escrowed, Threshold: rec.Manifest.Threshold,
	}, nil
}

func (n *Node) summary(r *catalog.Record) adminrpc.ModelSummary {
	pub, _ := r.Manifest.PublisherID()
	s := adminrpc.ModelSummary{
		ModelID: hex.EncodeToString(r.ID[:]), Name: r.Manifest.Name, Publisher: pub.String(),
		Size: r.Manifest.Size, Price: r.Manifest.Price, Chunks: r.Manifest.Chunks,
	}
	if len(r.Manifest.Parent) == 32 {
		s.Parent = hex.EncodeToString(r.Manifest.Parent)
	}
	lineage := r.Lineage()
	s.Lineage, s.Depth = hex.EncodeToString(lineage[:]), n.catalog.Depth(r)
	if r.Manifest.CreatedAt > 0 {
		s.CreatedAt = r.Manifest.Created().Format("2006-01-02T15:04:05.000Z07:00")
	}
	s.LocalChunks = n.fetch.LocalChunks(r)
	s.Unlocked = n.keyring.Has(r.ID)
	s.Anchored = n.anchoring.Known(r.ID) == calimero.StateVerified
	return s
}

// anchorState reads a model's anchor briefly for model_get; an unreachable node reports the last
// known state.
func (n *Node) anchorState(ctx context.Context, r *catalog.Record) adminrpc.AnchorState {
	st := adminrpc.AnchorState{Key: calimero.AnchorKey(r.ID)}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	state, err := n.anchoring.Check(cctx, r.ID, r.Signed)
	if state == "" {
		state = n.anchoring.Known(r.ID)
	}
	st.State = state
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

func (n *Node) rpcModelList(ctx context.Context, _ adminrpc.Empty) ([]adminrpc.ModelSummary, error) {
	recs, err := n.catalog.All()
	if err != nil {
		return nil, err
	}
	out := []adminrpc.ModelSummary{}
	for _, r := range recs {
		out = append(out, n.summary(r))
	}
	// The versions of one lineage together: lineages by their root's creation, then each
	// lineage's versions by depth (and creation, for siblings).
	rootCreated := map[string]string{}
	for _, m := range out {
		if m.Depth == 1 {
			rootCreated[m.Lineage] = m.CreatedAt
		}
	}
	slices.SortStableFunc(out, func(a, b adminrpc.ModelSummary) int {
		return cmp.Or(cmp.Compare(rootCreated[a.Lineage], rootCreated[b.Lineage]), cmp.Compare(a.Lineage, b.Lineage),
			cmp.Compare(a.Depth, b.Depth), cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ModelID, b.ModelID))
	})
	return out, nil
}

func (n *Node) rpcModelGet(ctx context.Context, p adminrpc.ModelIDParams) (adminrpc.ModelDetail, error) {
	r, err := n.lookup(ctx, p.ModelID)
	if err != nil {
		return adminrpc.ModelDetail{}, err
	}
	s := n.summary(r)
	m := r.Manifest
	lineage := r.Lineage() // derived from verified parents
	d := adminrpc.ModelDetail{
		ModelID: s.ModelID, Name: m.Name, Description: m.Description, Size: m.Size, Chunks: m.Chunks, ChunkSize: m.ChunkSize,
		Root: hex.EncodeToString(m.Root), KeyCommitment: hex.EncodeToString(m.KeyCommitment), Price: m.Price,
		Payee:     adminrpc.Account{Owner: m.Payee.Owner, Subaccount: hex.EncodeToString(m.Payee.Subaccount)},
		Publisher: s.Publisher, Parent: s.Parent, Lineage: hex.EncodeToString(lineage[:]),
		CreatedAt: m.Created().Format("2006-01-02T15:04:05.000Z07:00"),
		Anchor:    n.anchorState(ctx, r),
		Providers: []string{}, LocalChunks: s.LocalChunks, Unlocked: s.Unlocked,
	}
	if price, ok := new(big.Int).SetString(m.Price, 10); ok {
		if tok, ok := n.ledger.Token(); ok { // never waits for the ledger; the CLI asks it when needed
			d.PriceTokens, d.Fee, d.FeeTokens = tok.Format(price), tok.Fee.String(), tok.Format(tok.Fee)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, pr := range n.catalog.Providers(pctx, r.ID) {
		d.Providers = append(d.Providers, pr.String())
	}
	return d, nil
}

func (n *Node) rpcModelFetch(ctx context.Context, p adminrpc.ModelIDParams) (adminrpc.JobIDResult, error) {
	id, err := n.modelID(p.ModelID)
	if err != nil {
		return adminrpc.JobIDResult{}, err
	}
	job, err := n.fetch.Fetch(ctx, id) // resolves an ID this node has not seen
	if err != nil {
		return adminrpc.JobIDResult{}, err
	}
	return adminrpc.JobIDResult{JobID: job}, nil
}

func (n *Node) rpcJobStatus(ctx context.Context, p adminrpc.JobIDParams) (adminrpc.JobStatus, error) {
	st, err := n.jobs.Status(p.JobID)
	if errors.Is(err, jobs.ErrNotFound) {
		return adminrpc.JobStatus{}, adminrpc.Errorf(adminrpc.CodeNotFound, "job %q is not known", p.JobID)
	}
	if err != nil {
		return adminrpc.JobStatus{}, err
	}
	return adminrpc.JobStatus{State: st.State, BytesDone: st.BytesDone, BytesTotal: st.BytesTotal, Peers: st.Peers, Error: st.Error}, nil
}

func (n *Node) rpcModelExport(ctx context.Context, p adminrpc.ExportParams) (adminrpc.ExportResult, error) {
	r, err := n.lookup(ctx, p.ModelID)
	if err != nil {
		return adminrpc.ExportResult{}, err
	}
	if p.Path == "" || !filepath.IsAbs(p.Path) {
		return adminrpc.ExportResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "path %q must be an absolute file path", p.Path)
	}
	if fi, err := os.Stat(p.Path); err == nil && fi.IsDir() {
		return adminrpc.ExportResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "%s is a directory: give a file path", p.Path)
	}
	if fi, err := os.Stat(filepath.Dir(p.Path)); err != nil || !fi.IsDir() {
		return adminrpc.ExportResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "folder %s does not exist: create it first or export to another path", filepath.Dir(p.Path))
	}
	size, sum, err := n.fetch.Export(r.ID, p.Path, p.Overwrite)
	switch {
	case errors.Is(err, fsutil.ErrInside):
		return adminrpc.ExportResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "%s is inside the node's datadir %s: export to a path outside it", p.Path, n.dir.Path)
	case errors.Is(err, fetch.ErrExists):
		return adminrpc.ExportResult{}, adminrpc.Errorf(adminrpc.CodeConflict, "%s already exists: choose another path, or pass overwrite (model export --force) to replace it", p.Path)
	case errors.Is(err, fetch.ErrNotUnlocked):
		return adminrpc.ExportResult{}, adminrpc.Errorf(adminrpc.CodeNotUnlocked, "model %s is not unlocked on this node: pay for it and unlock it first", p.ModelID)
	case errors.Is(err, fetch.ErrIncomplete):
		return adminrpc.ExportResult{}, adminrpc.Errorf(adminrpc.CodeNotFound, "%v", err)
	case errors.Is(err, content.ErrDecrypt), errors.Is(err, content.ErrKeyCommitment):
		return adminrpc.ExportResult{}, &adminrpc.Error{Code: adminrpc.CodeIntegrity, Message: "the stored model fails authentication; fetch it again", Data: err.Error()}
	case err != nil:
		return adminrpc.ExportResult{}, err
	}
	return adminrpc.ExportResult{Path: p.Path, Size: size, SHA256: hex.EncodeToString(sum[:])}, nil
}
