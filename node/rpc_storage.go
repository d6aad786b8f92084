package node

import (
	"context"
	"encoding/hex"

	"github.com/califusion/califusion/node/storage"
	"github.com/califusion/califusion/protocols/adminrpc"
)

func (n *Node) registerStorageRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "model_rm", n.rpcModelRm)
	adminrpc.Handle(s, "model_pin", n.rpcModelPin)
	adminrpc.Handle(s, "repo_gc", n.rpcRepoGC)
	adminrpc.Handle(s, "repo_stat", n.rpcRepoStat)
}

func (n *Node) rpcModelRm(ctx context.Context, p adminrpc.ModelRmParams) (adminrpc.ModelRmResult, error) {
	r, err := n.lookupLocal(p.ModelID)
	if err != nil {
		return adminrpc.ModelRmResult{}, err
	}
	res, err := n.storage.Remove(r.ID, p.Forget, p.Force)
	if err != nil {
		return adminrpc.ModelRmResult{}, err
	}
	return adminrpc.ModelRmResult{ModelID: hex.EncodeToString(r.ID[:]), FreedBytes: res.Freed, Forgotten: res.Forgotten}, nil
}

func (n *Node) rpcModelPin(ctx context.Context, p adminrpc.ModelPinParams) (adminrpc.ModelPinResult, error) {
	r, err := n.lookupLocal(p.ModelID)
	if err != nil {
		return adminrpc.ModelPinResult{}, err
	}
	if err := n.storage.Pin(r.ID, p.Pinned); err != nil {
		return adminrpc.ModelPinResult{}, err
	}
	return adminrpc.ModelPinResult{ModelID: hex.EncodeToString(r.ID[:]), Pinned: p.Pinned}, nil
}

func storageModels(ms []storage.Model) []adminrpc.StorageModel {
	out := []adminrpc.StorageModel{}
	for _, m := range ms {
		out = append(out, adminrpc.StorageModel{ModelID: hex.EncodeToString(m.ID[:]), Name: m.Name, Bytes: m.Bytes, Reason: m.Reason})
	}
	return out
}

func (n *Node) rpcRepoGC(ctx context.Context, _ adminrpc.Empty) (adminrpc.RepoGCResult, error) {
	res, err := n.storage.GC()
	if err != nil {
		return adminrpc.RepoGCResult{}, err
	}
	return adminrpc.RepoGCResult{Models: len(res.Removed), FreedBytes: res.Freed, Removed: storageModels(res.Removed), Kept: storageModels(res.Kept)}, nil
}

func (n *Node) rpcRepoStat(ctx context.Context, _ adminrpc.Empty) (adminrpc.RepoStat, error) {
	st, err := n.storage.Stat()
	if err != nil {
		return adminrpc.RepoStat{}, err
	}
	out := adminrpc.RepoStat{
		Models: st.Models, Complete: st.Complete, Partial: st.Partial, BlobBytes: st.BlobBytes, KeysHeld: st.KeysHeld,
		Pinned: st.Pinned, MaxBlobBytes: st.MaxBlobBytes, ReclaimableBytes: st.Reclaimable,
	}
	if st.MaxBlobBytes > 0 {
		out.UsedPercent = st.BlobBytes * 100 / st.MaxBlobBytes
	}
	return out, nil
}
