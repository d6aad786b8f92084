package keys

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/libp2p/go-libp2p/core/peer"
)

// SetCoordinators admits a signed coordinator update of a lineage (its root's publisher's
// signature is the authority, whoever relays it), adding the lineage root to the catalog first
// when it comes along. It is the coordinators handler.
func (c *Coordinator) SetCoordinators(ctx context.Context, from peer.ID, m *keyswire.Coordinators) *keyswire.Result {
	if !c.depositLimit.Allow(from) {
		return refuse(apierr.Unavailable, "too many key deposits and updates from you: wait a minute and send again")
	}
	if len(m.Root) > 0 {
		if _, _, err := c.deps.Catalog.Add(m.Root, "escrow"); err != nil {
			return admissionRefusal(err)
		}
	}
	u, changed, err := c.deps.Catalog.SetCoordinators(m.Update)
	switch {
	case errors.Is(err, catalog.ErrUnknownLineage):
		return refuse(apierr.NotFound, "the lineage is not in this coordinator's catalog: send the update with its root manifest")
	case errors.Is(err, catalog.ErrStaleUpdate):
		return refuse(apierr.Conflict, "%v: number a new update above it", err)
	case errors.Is(err, content.ErrCoordinatorUpdate):
		return refuse(apierr.Integrity, "the coordinator update does not verify: %v", err)
	case err != nil:
		return refuse(apierr.Internal, "record coordinator update: %v", err)
	}
	c.log.Info("coordinator update received", "lineage", hex.EncodeToString(u.Lineage), "seq", u.Seq, "changed", changed, "peer", from)
	return &keyswire.Result{}
}

// AnnounceCoordinators hands a signed coordinator update of r's lineage (with its root manifest)
// to each peer in to, a few at a time; this node, if among them, has applied it already. It
// returns how many accepted it and the others with their errors.
func (c *Client) AnnounceCoordinators(ctx context.Context, r *catalog.Record, signed []byte, to []peer.ID) (int, []EscrowFailure) {
	msg := &keyswire.Coordinators{Update: signed, Root: r.RootRecord().Signed}
	var (
		accepted int
		failed   []EscrowFailure
		done     = make(chan struct {
			co  peer.ID
			err error
		}, len(to))
		sem  = make(chan struct{}, parallelAsks)
		sent int
	)
	for _, co := range to {
		if co == c.cfg.Self {
			accepted++
			continue
		}
		sent++
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			uctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, err := keyswire.Request(uctx, c.deps.Host, co, keyswire.PurposeCoordinators, msg)
			done <- struct {
				co  peer.ID
				err error
			}{co, err}
		}()
	}
	for range sent {
		d := <-done
		if d.err != nil {
			c.log.Warn("coordinator update not delivered", "peer", d.co, "err", d.err)
			failed = append(failed, EscrowFailure{d.co, d.err.Error()})
			continue
		}
		accepted++
	}
	return accepted, failed
}

// CoordinatorsUpdated is what UpdateCoordinators did: the update signed and who accepted it.
type CoordinatorsUpdated struct {
	Update   *content.CoordinatorUpdate
	Accepted int
	Failed   []EscrowFailure
}

// UpdateCoordinators signs the next coordinator update of the lineage of r, which this node
// published: from now on coords hold the keys (threshold ≥ 2: the key shares) of the versions
// published, run its rounds and sign its versions. It applies it to this node's catalog and hands
// it to every coordinator, old and new. Versions published before keep their holders.
func (c *Client) UpdateCoordinators(ctx context.Context, r *catalog.Record, coords []peer.ID, threshold uint) (CoordinatorsUpdated, error) {
	root := r.RootRecord()
	if string(root.Manifest.Publisher) != string(c.cfg.Self) || c.cfg.Key == nil {
		return CoordinatorsUpdated{}, apierr.Errorf(apierr.Role, "this node did not publish lineage %x: only its publisher may change its coordinators", root.ID[:6])
	}
	old, _ := r.CoordinatorSet()
	seq := uint64(1)
	if cur, _ := root.Coordination.Current(); cur != nil {
		seq = cur.Seq + 1
	}
	u := &content.CoordinatorUpdate{Lineage: root.ID[:], Seq: seq, Threshold: threshold, CreatedAt: time.Now().UnixMilli()}
	for _, co := range coords {
		u.Coordinators = append(u.Coordinators, []byte(co))
	}
	signed, err := content.SignCoordinatorUpdate(u, c.cfg.Key)
	if err != nil {
		return CoordinatorsUpdated{}, apierr.Errorf(apierr.InvalidParams, "%v", err)
	}
	if _, _, err := c.deps.Catalog.SetCoordinators(signed); err != nil {
		return CoordinatorsUpdated{}, err
	}
	to := append([]peer.ID(nil), coords...)
	for _, co := range old {
		if !slices.Contains(to, co) {
			to = append(to, co)
		}
	}
	accepted, failed := c.AnnounceCoordinators(ctx, root, signed, to)
	c.log.Info("lineage coordinators changed", "lineage", hex.EncodeToString(root.ID[:]), "seq", seq, "coordinators", coords, "threshold", threshold, "accepted", accepted)
	return CoordinatorsUpdated{Update: u, Accepted: accepted, Failed: failed}, nil
}
