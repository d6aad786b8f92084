package node

import (
	"context"
	"encoding/hex"
	"slices"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/libp2p/go-libp2p/core/peer"
)

// registerEscrowRPC registers the threshold key escrow methods.
func (n *Node) registerEscrowRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "model_escrow", n.rpcModelEscrow)
	adminrpc.Handle(s, "model_coordinators", n.rpcModelCoordinators)
}

// rpcModelEscrow deposits again the key, or each coordinator's share of it, of a model this
// node signed and holds the key of.
func (n *Node) rpcModelEscrow(ctx context.Context, p adminrpc.ModelEscrowParams) (adminrpc.ModelEscrowResult, error) {
	r, err := n.lookupLocal(p.ModelID)
	if err != nil {
		return adminrpc.ModelEscrowResult{}, err
	}
	if signer, _ := r.Manifest.PublisherID(); signer != n.host.ID() {
		return adminrpc.ModelEscrowResult{}, adminrpc.Errorf(adminrpc.CodeRole, "this node did not sign model %s: only its signer may deposit its key with the coordinators", p.ModelID)
	}
	k, err := n.keyring.Get(r.ID)
	if err != nil {
		return adminrpc.ModelEscrowResult{}, adminrpc.Errorf(adminrpc.CodeNotUnlocked, "this node does not hold the key of model %s any more, so it cannot deposit it again", p.ModelID)
	}
	defer k.Wipe()
	rep := n.keys.EscrowKey(ctx, r, k)
	res := adminrpc.ModelEscrowResult{ModelID: hex.EncodeToString(r.ID[:]), Holders: rep.Holders, Deposited: rep.Deposited, Needed: rep.Needed}
	for _, f := range rep.Failed {
		res.Failed = append(res.Failed, adminrpc.EscrowFailure{PeerID: f.Peer.String(), Error: f.Err})
	}
	return res, nil
}

// rpcModelCoordinators signs a coordinator update of a lineage this node published and hands it
// to every coordinator, old and new.
func (n *Node) rpcModelCoordinators(ctx context.Context, p adminrpc.ModelCoordinatorsParams) (adminrpc.ModelCoordinatorsResult, error) {
	r, err := n.lookupLocal(p.ModelID)
	if err != nil {
		return adminrpc.ModelCoordinatorsResult{}, err
	}
	var coords []peer.ID
	for _, s := range p.Coordinators {
		id, err := peer.Decode(s)
		if err != nil {
			return adminrpc.ModelCoordinatorsResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "coordinator %q is not a peer ID", s)
		}
		if !slices.Contains(coords, id) {
			coords = append(coords, id)
		}
	}
	if len(coords) == 0 {
		return adminrpc.ModelCoordinatorsResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "name the lineage's coordinators with coordinators (--coordinator PEER_ID, repeated)")
	}
	done, err := n.keys.UpdateCoordinators(ctx, r, coords, p.Threshold)
	if err != nil {
		return adminrpc.ModelCoordinatorsResult{}, err
	}
	res := adminrpc.ModelCoordinatorsResult{Lineage: hex.EncodeToString(done.Update.Lineage), Seq: done.Update.Seq, Threshold: done.Update.Threshold, Accepted: done.Accepted}
	for _, id := range done.Update.CoordinatorIDs() {
		res.Coordinators = append(res.Coordinators, id.String())
	}
	for _, f := range done.Failed {
		res.Failed = append(res.Failed, adminrpc.EscrowFailure{PeerID: f.Peer.String(), Error: f.Err})
	}
	return res, nil
}
