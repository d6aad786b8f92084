package rounds

import (
	"context"
	"log/slog"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/store"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Catalog is the model catalog, as rounds reads it.
type Catalog interface {
	// Get returns a model's record; an unknown model's error wraps store.ErrNotFound.
	Get(id content.ModelID) (*catalog.Record, error)
	// Resolve returns a model's record, asking the network for one the catalog does not have;
	// a model nobody knows is an *apierr.Error with code NotFound.
	Resolve(ctx context.Context, id content.ModelID) (*catalog.Record, error)
}

// Models gives access to the content of models (the fetch service).
type Models interface {
	// Complete reports whether every chunk of r is on this node.
	Complete(r *catalog.Record) bool
	// WaitFetched fetches r (or joins its running fetch) and waits until it is complete.
	WaitFetched(ctx context.Context, r *catalog.Record) error
	// Plaintext decrypts a complete, unlocked model; fetch.ErrNotUnlocked when its key is not held.
	Plaintext(id content.ModelID) ([]byte, error)
}

// Publisher publishes an aggregate as the next version of a lineage.
type Publisher interface {
	PublishVersion(ctx context.Context, path, name, description string, parent content.ModelID) (*catalog.Record, error)
}

// Keyring tells whether this node holds a model's key.
type Keyring interface {
	Has(id content.ModelID) bool
	// Release wipes a key held in memory for a round (keys.Keyring.Hold); stored keys stay.
	Release(id content.ModelID)
}

// Keys is the trainer's side of the key service.
type Keys interface {
	// Claim asks coords for the key of r, which this node is entitled to without paying (it paid
	// for the lineage); not entitled: an *apierr.Error with code apierr.NotUnlocked.
	Claim(ctx context.Context, r *catalog.Record, coords []peer.ID) error
	// HoldForRound collects enough of the other coordinators' shares of a threshold version's
	// key (they release them only to a coordinator that runs an announced round on it) and holds
	// the key in memory; the coordinator releases it (Keyring.Release) when the round ends.
	HoldForRound(ctx context.Context, r *catalog.Record, coords []peer.ID) error
}

// Grants is the coordinator's record of which trainers paid for which lineage.
type Grants interface {
	// Entitled reports whether trainer may submit updates to rounds on r: it paid for r's
	// lineage or published it.
	Entitled(r *catalog.Record, trainer peer.ID) bool
}

// Anchoring anchors commitments on Calimero.
type Anchoring interface {
	// On reports whether anchoring is enabled.
	On() bool
	// Known returns the anchor state this node last saw for a model ("" if none).
	Known(id content.ModelID) string
	// Commit signs and anchors c, returning its kv-store key ("" when anchoring is off or
	// Calimero cannot be reached).
	Commit(ctx context.Context, c *calimero.Commitment) string
	// RoundCommitments reads back the commitments anchored for a round of a lineage (its
	// training context, then the catalog context), oldest first, each verified and signed by a
	// coordinator of the lineage.
	RoundCommitments(ctx context.Context, lineage [32]byte, round string) ([]*calimero.Commitment, error)
	// JoinTraining joins the lineage's training context (asking one of its coordinators for an
	// invitation); nil when training contexts are off.
	JoinTraining(ctx context.Context, lineage [32]byte) error
}

// Directory lists the coordinators this node knows of.
type Directory interface {
	// Coordinators are the presence-claimed coordinators, this node first if it is one.
	Coordinators() []peer.ID
}

// Config is how the service is set up.
type Config struct {
	Self          peer.ID // this node
	IsCoordinator bool    // node.roles has "coordinator": it runs rounds
	IsTrainer     bool    // node.roles has "trainer": it trains for rounds
	Train         config.Train
	// RoundsDir (a coordinator's accepted updates of open rounds), UpdatesDir (a trainer's
	// trained updates) and TrainDir (the exec hooks' scratch space): absolute paths, normally
	// the datadir folders RoundsDir, UpdatesDir and TrainDir.
	RoundsDir, UpdatesDir, TrainDir string
	Log                             *slog.Logger // nil: discard
	Metrics                         *metrics.Set // updates, aggregates and hook durations (nil: none)
}

// Deps are the services and the network the rounds service uses.
type Deps struct {
	Store     *store.Store
	Host      host.Host      // trainer: asks coordinators for rounds and submits updates
	PubSub    *pubsub.PubSub // nil: no rounds topic (nothing is announced or heard)
	Kex       *kex.Server    // coordinator: serves the updates protocol (nil: not served)
	Catalog   Catalog
	Models    Models
	Publisher Publisher
	Keyring   Keyring
	Keys      Keys
	Grants    Grants
	Anchoring Anchoring
	Directory Directory
	// Rewards (coordinator) says what a campaign paid a trainer, for its report; Ledger
	// (trainer) checks such a claim. Either may be nil: no reward is told, or none verified.
	Rewards Rewards
	Ledger  Ledger
	// Campaigns (coordinator) is told of each round this node re-opens for a silent
	// coordinator, so the round's campaign goes on here; nil: nobody is told.
	Campaigns Campaigns
}

// Campaigns is told of the rounds this node re-opens (node/campaign adopts their campaigns).
type Campaigns interface {
	Reopened(r announce.Round)
}

// Reward is what a coordinator paid one contributor of a round (node/campaign's payouts).
type Reward struct {
	Amount string // base units, decimal
	Block  uint64 // the ledger block of the transfer
	Payer  string // principal (text) of the account it was paid from
}

// Rewards tells a coordinator what it paid a round's contributor, for the report it gives the
// trainer (node/campaign implements it).
type Rewards interface {
	// RewardFor returns the reward paid (done, with its block) to trainer for round, if any.
	RewardFor(roundID string, trainer peer.ID) (Reward, bool)
}

// Ledger gives a trainer's ledger client (node/ledger's Service), with which it checks the
// rewards coordinators say they paid it.
type Ledger interface {
	Client() (ledger.Ledger, error)
}
