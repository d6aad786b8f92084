package node

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

func (n *Node) registerPayRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "model_pay", n.rpcModelPay)
	adminrpc.Handle(s, "model_unlock", n.rpcModelUnlock)
}

// pay transfers the price of r's lineage to its payee with the binding memo.
func (n *Node) pay(ctx context.Context, r *record) (adminrpc.PayResult, error) {
	c, err := n.ledgerClient()
	if err != nil {
		return adminrpc.PayResult{}, err
	}
	// Price and payee are the lineage root's (r.Root is derived, never read from the manifest).
	payee, err := principal.Decode(r.Payee().Owner)
	if err != nil {
		return adminrpc.PayResult{}, adminrpc.Errorf(adminrpc.CodeIntegrity, "the manifest's payee is not a principal")
	}
	memo := keys.Memo(r.Lineage(), n.host.ID())
	price := r.Price()
	idx, err := c.Transfer(ctx, icp.Account{Owner: payee, Subaccount: subOf(r.Payee().Subaccount)}, price, memo, time.Now())
	if err != nil {
		return adminrpc.PayResult{}, ledgerErr(err)
	}
	n.log.Info("model paid", "model", hex.EncodeToString(r.ID[:]), "block", idx, "amount", price)
	return adminrpc.PayResult{Ledger: c.Ledger().Encode(), BlockIndex: idx, Amount: price.String(), Memo: hex.EncodeToString(memo)}, nil
}

// holders returns the coordinators among coords that say they hold the key of id.
func (n *Node) holders(ctx context.Context, coords []peer.ID, id content.ModelID) []peer.ID {
	var out []peer.ID
	for _, c := range coords {
		if c == n.host.ID() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := keys.Request(pctx, n.host, c, keys.PurposeProbe, &keys.Probe{Model: id[:]})
		cancel()
		if err == nil {
			out = append(out, c)
		}
	}
	return out
}

func (n *Node) rpcModelPay(ctx context.Context, p adminrpc.ModelIDParams) (adminrpc.PayResult, error) {
	r, err := n.lookup(p.ModelID)
	if err != nil {
		return adminrpc.PayResult{}, err
	}
	if err := n.requireAnchor(ctx, r); err != nil {
		return adminrpc.PayResult{}, err
	}
	return n.pay(ctx, r)
}

// requireAnchor refuses, under anchoring "require", a model whose anchor does not verify.
func (n *Node) requireAnchor(ctx context.Context, r *record) error {
	if n.anchoring.policy != "require" {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if state, err := n.anchoring.check(cctx, r.ID, r.Signed); state != "verified" {
		return &adminrpc.Error{Code: adminrpc.CodeIntegrity, Message: "the model has no valid Calimero anchor (policy require): refusing to pay for it", Data: errString(err)}
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (n *Node) rpcModelUnlock(ctx context.Context, p adminrpc.UnlockParams) (adminrpc.UnlockResult, error) {
	r, err := n.lookup(p.ModelID)
	if err != nil {
		return adminrpc.UnlockResult{}, err
	}
	if _, err := n.models.keys.get(r.ID); err == nil {
		return adminrpc.UnlockResult{Unlocked: true}, nil
	}
	payer, err := n.ledger.client()
	if err != nil {
		return adminrpc.UnlockResult{}, &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "the ICP replica could not be reached", Data: err.Error()}
	}
	req := &keys.Unlock{Model: r.ID[:], Ledger: p.Ledger, Payer: payer.Principal().Encode()}
	coords := n.coordinators()
	if p.BlockIndex == nil {
		if err := n.requireAnchor(ctx, r); err != nil {
			return adminrpc.UnlockResult{}, err
		}
		// Pay only when some coordinator can release the key, and only if this node has not paid
		// for the lineage already (or published it).
		if coords = n.holders(ctx, coords, r.ID); len(coords) == 0 {
			return adminrpc.UnlockResult{}, adminrpc.Errorf(adminrpc.CodeNotFound, "no reachable coordinator holds the key of model %s: nothing was paid", p.ModelID)
		}
		err := n.requestKey(ctx, r, coords, &keys.Unlock{Model: r.ID[:]})
		var ae *adminrpc.Error
		if !errors.As(err, &ae) || ae.Code != adminrpc.CodeNotUnlocked {
			return adminrpc.UnlockResult{Unlocked: err == nil}, err
		}
		paid, err := n.pay(ctx, r)
		if err != nil {
			return adminrpc.UnlockResult{}, err
		}
		req.Ledger, req.Block = paid.Ledger, paid.BlockIndex
	} else {
		req.Block = *p.BlockIndex
	}
	if req.Ledger == "" {
		req.Ledger = n.cfg.ICP.LedgerCanisterID
	}
	if err := n.requestKey(ctx, r, coords, req); err != nil {
		return adminrpc.UnlockResult{}, err
	}
	return adminrpc.UnlockResult{Unlocked: true}, nil
}

// requestKey asks coordinators in turn for r's key with req, checks the key against the
// manifest's commitment and keeps it. A request without a ledger asks for a key this node is
// already entitled to (it paid for the lineage, or published it); the refusal is not_unlocked.
func (n *Node) requestKey(ctx context.Context, r *record, coords []peer.ID, req *keys.Unlock) error {
	if len(coords) == 0 {
		return adminrpc.Errorf(adminrpc.CodeUnavailable, "no coordinator is known yet: connect to the network and retry")
	}
	var last error = adminrpc.Errorf(adminrpc.CodeUnavailable, "no coordinator answered")
	for _, c := range coords {
		if c == n.host.ID() {
			continue // a coordinator that lacks the key locally cannot ask itself
		}
		uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		res, err := keys.Request(uctx, n.host, c, keys.PurposeUnlock, req)
		cancel()
		var refusal *keys.Error
		if errors.As(err, &refusal) {
			last = &adminrpc.Error{Code: refusal.Code, Message: refusal.Message}
			if refusal.Code == adminrpc.CodeNotFound || refusal.Code == adminrpc.CodeUnavailable {
				continue // another coordinator may hold the key
			}
			return last
		}
		if err != nil {
			last = &adminrpc.Error{Code: adminrpc.CodeUnavailable, Message: "coordinator " + c.String() + " could not be reached", Data: err.Error()}
			continue
		}
		if len(res.Key) != content.KeySize {
			return adminrpc.Errorf(adminrpc.CodeIntegrity, "the coordinator sent a malformed key")
		}
		k := content.Key(res.Key)
		defer k.Wipe()
		if err := k.CheckCommitment(r.Manifest.KeyCommitment); err != nil {
			return adminrpc.Errorf(adminrpc.CodeIntegrity, "the released key does not match the manifest's key commitment")
		}
		if err := n.store.Update(func(tx *store.Tx) error { return n.models.keys.put(tx, r.ID, k) }); err != nil {
			return err
		}
		n.log.Info("model unlocked", "model", hex.EncodeToString(r.ID[:]), "coordinator", c, "block", req.Block)
		return nil
	}
	return last
}
