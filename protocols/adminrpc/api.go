package adminrpc

import "github.com/califusion/califusion/protocols/apierr"

// Method params and results of shared/API.md, shared by the server side (node) and Client.

// NodeInfo is the result of node_info.
type NodeInfo struct {
	PeerID       string   `json:"peer_id"`
	Addrs        []string `json:"addrs"`
	Roles        []string `json:"roles"`
	Version      string   `json:"version"`
	ICPPrincipal string   `json:"icp_principal"`
	ICPAccount   string   `json:"icp_account"`
	Datadir      string   `json:"datadir"`
	// Additions: the paying account's ICP ledger account identifier (hex, what exchanges ask
	// for), the kind of its key (secp256k1, ed25519, prime256v1) and how payments are verified
	// (icp, icrc3, or auto until the ledger has answered).
	ICPAccountID  string `json:"icp_account_id,omitempty"`
	ICPKeyKind    string `json:"icp_key_kind,omitempty"`
	ICPLedgerKind string `json:"icp_ledger_kind,omitempty"`
}

// Peer is one entry of node_peers.
type Peer struct {
	PeerID    string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	LatencyMS float64  `json:"latency_ms"`
}

// ConnectParams are the params of node_connect.
type ConnectParams struct {
	Addr string `json:"addr"`
}

// ConnectResult is the result of node_connect.
type ConnectResult struct {
	PeerID string `json:"peer_id"`
}

// DirectoryEntry is one entry of node_directory: a node known from its signed presence
// announcements on gossipsub, connected or not.
type DirectoryEntry struct {
	PeerID   string   `json:"peer_id"`
	Roles    []string `json:"roles"`
	Version  string   `json:"version"`
	Addrs    []string `json:"addrs"`
	SentAt   string   `json:"sent_at"`
	Received string   `json:"received"`
}

// RoutingResult is the result of node_routing: the peers in the DHT routing table.
type RoutingResult struct {
	Peers []string `json:"peers"`
}

// Empty is the params of methods that take none.
type Empty struct{}

// PublishParams are the params of model_publish.
type PublishParams struct {
	Path        string `json:"path"`
	Name        string `json:"name"`
	Price       string `json:"price"`
	Description string `json:"description,omitempty"`
	ChunkSize   uint64 `json:"chunk_size,omitempty"`
	// Coordinators are the peer IDs the new lineage authorises to hold its key, run its rounds
	// and publish its later versions (at most 16). Omitted: this node if it is a coordinator,
	// else none.
	Coordinators []string `json:"coordinators,omitempty"`
	// Threshold t ≥ 2 escrows the key t-of-n: each coordinator holds one share and any t of them
	// release the key (t ≤ the coordinators). Omitted, 0 or 1: each holds the whole key.
	Threshold uint `json:"threshold,omitempty"`
}

// PublishResult is the result of model_publish.
type PublishResult struct {
	ModelID  string `json:"model_id"`
	Root     string `json:"root"`
	Size     uint64 `json:"size"`
	Chunks   uint64 `json:"chunks"`
	Anchored bool   `json:"anchored"`
	// Escrowed is how many coordinators hold the key, or their share of it (this node included).
	Escrowed int `json:"escrowed,omitempty"`
	// Threshold is the lineage's threshold (omitted: whole-key escrow).
	Threshold uint `json:"threshold,omitempty"`
}

// ModelSummary is one entry of model_list.
type ModelSummary struct {
	ModelID     string `json:"model_id"`
	Name        string `json:"name"`
	Publisher   string `json:"publisher"`
	Size        uint64 `json:"size"`
	Price       string `json:"price"`
	Parent      string `json:"parent,omitempty"`
	Anchored    bool   `json:"anchored"`
	LocalChunks uint64 `json:"local_chunks"`
	Chunks      uint64 `json:"chunks"`
	Unlocked    bool   `json:"unlocked"`
	// Lineage is the model ID of the lineage's first version (the model's own for a root).
	Lineage string `json:"lineage,omitempty"`
	// Depth is the version's place in its lineage: 1 for the root, its parent's depth + 1.
	Depth int `json:"depth,omitempty"`
	// CreatedAt is when the publisher created the manifest (RFC 3339, milliseconds).
	CreatedAt string `json:"created_at,omitempty"`
}

// ModelIDParams name one model.
type ModelIDParams struct {
	ModelID string `json:"model_id"`
}

// Account is an ICRC-1 account: an owner principal and an optional 32-byte subaccount (hex).
type Account struct {
	Owner      string `json:"owner"`
	Subaccount string `json:"subaccount,omitempty"`
}

// AnchorState describes a model's Calimero anchor.
type AnchorState struct {
	State string `json:"state"` // verified | missing | invalid | off
	Key   string `json:"key"`
	Error string `json:"error,omitempty"`
}

// ModelDetail is the result of model_get.
type ModelDetail struct {
	ModelID       string      `json:"model_id"`
	Name          string      `json:"name"`
	Description   string      `json:"description,omitempty"`
	Size          uint64      `json:"size"`
	Chunks        uint64      `json:"chunks"`
	ChunkSize     uint64      `json:"chunk_size"`
	Root          string      `json:"root"`
	KeyCommitment string      `json:"key_commitment"`
	Price         string      `json:"price"`
	PriceTokens   string      `json:"price_tokens,omitempty"` // addition: "1.5 ICP", when the ledger answered
	Fee           string      `json:"fee,omitempty"`          // addition: the ledger's transfer fee, base units
	FeeTokens     string      `json:"fee_tokens,omitempty"`   // addition: the fee as tokens
	Payee         Account     `json:"payee"`
	Publisher     string      `json:"publisher"`
	Parent        string      `json:"parent,omitempty"`
	Lineage       string      `json:"lineage"`
	CreatedAt     string      `json:"created_at"`
	Anchor        AnchorState `json:"anchor"`
	Providers     []string    `json:"providers"`
	LocalChunks   uint64      `json:"local_chunks"`
	Unlocked      bool        `json:"unlocked"`
}

// JobIDResult is the result of model_fetch.
type JobIDResult struct {
	JobID string `json:"job_id"`
}

// JobIDParams name one job.
type JobIDParams struct {
	JobID string `json:"job_id"`
}

// JobStatus is the result of job_status.
type JobStatus struct {
	State      string `json:"state"`
	BytesDone  uint64 `json:"bytes_done"`
	BytesTotal uint64 `json:"bytes_total"`
	Peers      int    `json:"peers"`
	Error      string `json:"error,omitempty"`
}

// ExportParams are the params of model_export.
type ExportParams struct {
	ModelID string `json:"model_id"`
	Path    string `json:"path"`
	// Overwrite replaces an existing file at Path; without it an existing path is refused.
	Overwrite bool `json:"overwrite,omitempty"`
}

// ExportResult is the result of model_export.
type ExportResult struct {
	Path   string `json:"path"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
}

// BalanceResult is the result of ledger_balance.
type BalanceResult struct {
	Ledger   string `json:"ledger"`
	Account  string `json:"account"`
	Balance  string `json:"balance"`
	Decimals uint8  `json:"decimals"`
	Symbol   string `json:"symbol"`
	// Additions: the ledger kind (icp or icrc3), the account identifier (ICP ledger only), the
	// balance as tokens ("1.5 ICP") and the transfer fee in base units and tokens.
	LedgerKind    string `json:"ledger_kind,omitempty"`
	AccountID     string `json:"account_id,omitempty"`
	BalanceTokens string `json:"balance_tokens,omitempty"`
	Fee           string `json:"fee,omitempty"`
	FeeTokens     string `json:"fee_tokens,omitempty"`
}

// TransferParams are the params of ledger_transfer.
type TransferParams struct {
	ToPrincipal  string `json:"to_principal"`
	ToSubaccount string `json:"to_subaccount,omitempty"`
	Amount       string `json:"amount"`
	Memo         string `json:"memo,omitempty"`
}

// TransferResult is the result of ledger_transfer.
type TransferResult struct {
	Ledger     string `json:"ledger"`
	BlockIndex uint64 `json:"block_index"`
}

// PayParams are the params of model_pay: {"model_id": ...} as ModelIDParams, plus Again to pay
// even though this node already paid for the model's lineage.
type PayParams struct {
	ModelID string `json:"model_id"`
	Again   bool   `json:"again,omitempty"`
}

// PayResult is the result of model_pay. AlreadyPaid says the block is an earlier payment of this
// node for the model's lineage, returned instead of paying twice.
type PayResult struct {
	Ledger     string `json:"ledger"`
	BlockIndex uint64 `json:"block_index"`
	Amount     string `json:"amount"`
	Memo       string `json:"memo"`
	// AlreadyPaid says the lineage was paid before: nothing was paid now (model_pay without again).
	AlreadyPaid bool `json:"already_paid"`
	// Additions (set by the CLI from the ledger's decimals and symbol): amount and fee as tokens.
	AmountTokens string `json:"amount_tokens,omitempty"`
	Fee          string `json:"fee,omitempty"`
	FeeTokens    string `json:"fee_tokens,omitempty"`
}

// UnlockParams are the params of model_unlock.
type UnlockParams struct {
	ModelID    string  `json:"model_id"`
	Ledger     string  `json:"ledger,omitempty"`
	BlockIndex *uint64 `json:"block_index,omitempty"`
}

// UnlockResult is the result of model_unlock.
type UnlockResult struct {
	Unlocked bool `json:"unlocked"`
}

// RoundOpenParams are the params of round_open. Deadline is an RFC 3339 time or a duration from
// now ("90s", "10m"). ClipMode (an addition to shared/API.md) is "reject" (default) or "scale".
// MaxSamples (an addition) is the most samples one trainer's update may claim: claims above it
// are refused (reason sample_count) and it caps each update's FedAvg weight; 0 means 100000.
type RoundOpenParams struct {
	ModelID    string  `json:"model_id"`
	MinUpdates int     `json:"min_updates"`
	Deadline   string  `json:"deadline"`
	Rule       string  `json:"rule"`
	ClipNorm   float64 `json:"clip_norm,omitempty"`
	ClipMode   string  `json:"clip_mode,omitempty"`
	MaxSamples uint64  `json:"max_samples,omitempty"`
	// Secure (an addition) runs the round with secure aggregation (SecAgg+): the coordinator
	// sees only the sum of the trainers' masked deltas. Rule must be fedavg, and clip_norm
	// needs clip_mode scale. Neighbours, Threshold, Clip and Bits override the defaults for
	// min_updates trainers (api_secure.go SecAggParams); 0 keeps the default.
	Secure     bool    `json:"secure,omitempty"`
	Neighbours int     `json:"neighbours,omitempty"`
	Threshold  int     `json:"threshold,omitempty"`
	Clip       float64 `json:"clip,omitempty"`
	Bits       int     `json:"bits,omitempty"`
	// StrategyParams (additions, api_strategy.go): strategy, server_lr, momentum, beta2, tau
	// and prox_mu, flat in the params object.
	StrategyParams
	// Config (an addition) is the round's free-form configuration: at most 32 keys matching
	// ^[a-z][a-z0-9_]{0,63}$, each a number, a string of at most 256 bytes or a boolean. Trainers'
	// exec hooks read it under "config" in {config}; the built-in trainer ignores it.
	Config map[string]any `json:"config,omitempty"`
}

// RoundIDParams name a round.
type RoundIDParams struct {
	RoundID string `json:"round_id"`
}

// RoundListParams filter round_list.
type RoundListParams struct {
	ModelID string `json:"model_id,omitempty"`
}

// RoundInfo is one entry of round_list. NewModel, Error, MaxSamples, Joinable and Submitted
// are additions to shared/API.md.
type RoundInfo struct {
	RoundID     string `json:"round_id"`
	ModelID     string `json:"model_id"`
	State       string `json:"state"`
	Updates     int    `json:"updates"`
	MinUpdates  int    `json:"min_updates"`
	Deadline    string `json:"deadline"`
	Rule        string `json:"rule"`
	Coordinator string `json:"coordinator"`
	NewModel    string `json:"new_model,omitempty"`
	Error       string `json:"error,omitempty"`
	MaxSamples  uint64 `json:"max_samples,omitempty"`
	// Additions: whether this node can join the round (it is open, its deadline is ahead, its
	// model's lineage authorises its coordinator, this node is a trainer and has not submitted
	// to it) and whether it submitted an update to it.
	Joinable  bool `json:"joinable,omitempty"`
	Submitted bool `json:"submitted,omitempty"`
	// Secure (an addition): the round runs secure aggregation.
	Secure bool `json:"secure,omitempty"`
	// Reopens (an addition) names the round this one re-opens: another coordinator of the
	// lineage opened it with the same parameters after that round's coordinator went silent; an
	// update trained for that round is submitted here.
	Reopens string `json:"reopens,omitempty"`
	// StrategyParams (additions, api_strategy.go): the round's strategy, flat in the object.
	StrategyParams
	// CampaignID and CampaignRound (additions): the campaign the round is one of and its number
	// in it, from 1.
	CampaignID    string `json:"campaign_id,omitempty"`
	CampaignRound int    `json:"campaign_round,omitempty"`
	// Free-form round configuration (an addition, helper cfgmap): the round's config map,
	// as round_open took it.
	Config map[string]any `json:"config,omitempty"`
	// UpdateID (an addition), on a trainer: the update this node submitted to the round (for a
	// round re-opened after a failover, the one it submitted to the new round counts for both).
	UpdateID string `json:"update_id,omitempty"`
}

// TrainRunParams are the params of train_run: data and hook override the [train] config;
// Epochs, BatchSize and LearningRate (additions) override the built-in trainer's settings.
type TrainRunParams struct {
	RoundID      string  `json:"round_id"`
	Data         string  `json:"data,omitempty"`
	Hook         string  `json:"hook,omitempty"`
	Epochs       int     `json:"epochs,omitempty"`
	BatchSize    int     `json:"batch_size,omitempty"`
	LearningRate float64 `json:"learning_rate,omitempty"`
}

// TrainRunResult is the result of train_run.
type TrainRunResult struct {
	UpdateID string  `json:"update_id"`
	Samples  uint64  `json:"samples"`
	Seconds  float64 `json:"seconds"`
}

// UpdateSubmitParams are the params of update_submit.
type UpdateSubmitParams struct {
	RoundID  string `json:"round_id"`
	UpdateID string `json:"update_id"`
}

// UpdateSubmitResult is the result of update_submit. A rejected update is the error 1007
// update_rejected, with data {reason, norm}.
type UpdateSubmitResult struct {
	Accepted bool    `json:"accepted"`
	Reason   string  `json:"reason,omitempty"`
	Norm     float64 `json:"norm"`
	Clipped  bool    `json:"clipped,omitempty"`
	Anchor   string  `json:"anchor,omitempty"`
	// Secure (an addition): the round is secure and its coordinator admitted this trainer;
	// the secure aggregation runs on in the background and round_report tells its outcome.
	Secure bool `json:"secure,omitempty"`
}

// RejectedData is error.data of update_rejected.
type RejectedData = apierr.RejectedData

// RoundCloseResult is the result of round_close: the aggregate's ModelID.
type RoundCloseResult struct {
	ModelID string `json:"model_id"`
}

// Participant is one trainer's line in a round report.
type Participant struct {
	PeerID   string  `json:"peer_id"`
	Samples  uint64  `json:"samples"`
	Norm     float64 `json:"norm"`
	Accepted bool    `json:"accepted"`
	Reason   string  `json:"reason,omitempty"`
	Clipped  bool    `json:"clipped,omitempty"`
	SHA256   string  `json:"sha256"`
	// Metrics are the numbers the trainer's hook put in the update's metadata (e.g.
	// train_accuracy), as reported by the trainer, unverified.
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// RoundReport is the result of round_report: what the coordinator aggregated and how.
type RoundReport struct {
	RoundID         string             `json:"round_id"`
	BaseModel       string             `json:"base_model"`
	NewModel        string             `json:"new_model"`
	Rule            string             `json:"rule"`
	Participants    []Participant      `json:"participants"`
	AggregateSHA256 string             `json:"aggregate_sha256"`
	Anchors         []string           `json:"anchors"`
	Metrics         map[string]float64 `json:"metrics"`
	Timings         map[string]float64 `json:"timings"`
	// Additions for secure rounds: the trainers whose masked inputs are in the aggregate, those
	// that joined and dropped out, the SecAgg parameters, and why a secure round failed (it
	// has a report then too). On a trainer, its own line in participants says where it stands
	// (reason: joined, contributed, dropped or failed).
	Secure       bool          `json:"secure,omitempty"`
	Contributors []string      `json:"contributors,omitempty"`
	Dropouts     []string      `json:"dropouts,omitempty"`
	SecAgg       *SecAggParams `json:"secagg,omitempty"`
	Error        string        `json:"error,omitempty"`
	// Reward (an addition, api_rewards.go): on a trainer, its campaign reward for the round.
	Reward *RoundReward `json:"reward,omitempty"`
}
