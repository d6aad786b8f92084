package keys

import (
	"context"

	"github.com/califusion/califusion/protocols/apierr"
	keyswire "github.com/califusion/califusion/protocols/keys"
	"github.com/libp2p/go-libp2p/core/peer"
)

// SetCoordinators admits a signed coordinator update of a lineage. It is the coordinators
// handler.
func (c *Coordinator) SetCoordinators(ctx context.Context, from peer.ID, u *keyswire.Coordinators) *keyswire.Result {
	return refuse(apierr.Unavailable, "coordinator updates are not served yet")
}
