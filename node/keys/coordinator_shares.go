package keys

import (
	"context"
	"encoding/hex"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// depositShare keeps this coordinator's share of a threshold version's key: the caller checked
// the manifest and that its signer sent it (a root's publisher; for a later version the
// publisher or the lineage coordinator that signed it, as Catalog.Add admits). The index must be
// this coordinator's among the version's share holders and the share must match its commitment;
// only the share is stored, never a whole key.
func (c *Coordinator) depositShare(from peer.ID, d *keyswire.Deposit, man *content.Manifest, id content.ModelID) *keyswire.Result {
	switch {
	case !man.IsThreshold():
		return refuse(apierr.Integrity, "the model's manifest has no threshold: deposit its whole key, not a share")
	case len(d.Key) != 0:
		return refuse(apierr.Integrity, "the model's key is escrowed t-of-n: deposit this coordinator's share only, never the whole key")
	}
	idx, ok := man.ShareIndex(c.cfg.Self)
	if !ok {
		return refuse(apierr.Role, "this coordinator holds no share of the model: deposit each share only with the coordinator its manifest names at that index")
	}
	if d.Index != idx {
		return refuse(apierr.Integrity, "share %d is not this coordinator's: it holds share %d of the model", d.Index, idx)
	}
	if err := content.CheckShare(man, d.Index, d.Share); err != nil {
		return refuse(apierr.Integrity, "the deposited share does not match the manifest's share commitment %d", d.Index)
	}
	c.escrowMu.Lock()
	defer c.escrowMu.Unlock()
	held := c.holds(id)
	if man.IsRoot() && !held {
		if n := c.escrowedRoots(from); n >= maxEscrowedRoots {
			return refuse(apierr.Conflict, "this coordinator already holds the keys of %d lineages of yours, the most it keeps for one publisher", n)
		}
	}
	rec, _, err := c.deps.Catalog.Add(d.Manifest, "escrow")
	if err != nil {
		return admissionRefusal(err)
	}
	if !rec.IsCoordinator(c.cfg.Self) {
		return refuse(apierr.Role, "this coordinator is not a coordinator of the model's lineage: deposit shares only with its coordinators")
	}
	if err := c.deps.Store.Update(func(tx *store.Tx) error { return c.deps.Keys.PutShare(tx, id, idx, d.Share) }); err != nil {
		return refuse(apierr.Internal, "store key share: %v", err)
	}
	if man.IsRoot() && !held {
		c.escrowed[from]++
	}
	c.log.Info("key share escrowed", "model", hex.EncodeToString(id[:]), "peer", from, "index", idx)
	return &keyswire.Result{}
}

// release returns what this coordinator releases for r once the requester may have it: its
// share of a threshold version, else the whole key; a refusal when it holds neither.
func (c *Coordinator) release(r *catalog.Record) (*keyswire.Result, *keyswire.Result) {
	if r.Manifest.IsThreshold() {
		idx, y, err := c.deps.Keys.GetShare(r.ID)
		if err != nil {
			return nil, refuse(apierr.NotFound, "the coordinator holds no share of the key of model %x", r.ID[:6])
		}
		return &keyswire.Result{Share: y, Index: idx}, nil
	}
	key, err := c.deps.Keys.Get(r.ID)
	if err != nil {
		return nil, refuse(apierr.NotFound, "the coordinator holds no key for model %x", r.ID[:6])
	}
	out := &keyswire.Result{Key: append([]byte(nil), key[:]...)}
	key.Wipe()
	return out, nil
}

// resultCopy returns a Result with its own copies of the key and share bytes (the caller wipes its own).
func resultCopy(r *keyswire.Result) *keyswire.Result {
	return &keyswire.Result{Key: append([]byte(nil), r.Key...), Share: append([]byte(nil), r.Share...), Index: r.Index}
}

// RoundShare releases this coordinator's share of a threshold version's key to a fellow
// coordinator of its lineage, only while that coordinator runs a round on the version (as the
// rounds heard on gossip say: Deps.Rounds). It is the round share handler.
func (c *Coordinator) RoundShare(ctx context.Context, from peer.ID, r *keyswire.RoundShare) *keyswire.Result {
	if len(r.Model) != 32 {
		return refuse(apierr.InvalidParams, "model must be a 32-byte ModelID")
	}
	id := content.ModelID(r.Model)
	rec, err := c.deps.Catalog.Get(id)
	if err != nil {
		return refuse(apierr.NotFound, "the coordinator does not know model %x", id[:6])
	}
	switch {
	case !rec.Manifest.IsThreshold():
		return refuse(apierr.InvalidParams, "the key of model %x is not split: there is no share to release", id[:6])
	case !rec.IsCoordinator(from):
		return refuse(apierr.Role, "only a coordinator of the model's lineage may ask for a share of its key to run a round")
	case c.deps.Rounds == nil || !c.deps.Rounds.Runs(id, from):
		c.log.Info("key share refused: no round of the asker on the version is known here", "model", hex.EncodeToString(id[:]), "peer", from)
		return refuse(apierr.Role, "coordinator %s runs no round on model %x that this coordinator knows of: a share is released to a coordinator only while it runs a round on that version", from, id[:6])
	}
	released, refusal := c.release(rec)
	if refusal != nil {
		return refusal
	}
	c.log.Info("key share released for a round", "model", hex.EncodeToString(id[:]), "peer", from)
	return released
}
