package store

// RoundRecord is a training round as this node keeps it: authoritative on its coordinator,
// the newest announced snapshot elsewhere. It is stored in the same CBOR as the round
// announcement of today's gossip (announce.Round, whose tags it copies), so a datadir written
// when rounds were stored as that type reads unchanged; the two are converted at the gossip edge
// and may diverge from now on.
type RoundRecord struct {
	ID          string  `cbor:"1,keyasint"`            // 32 lowercase hex characters
	Model       []byte  `cbor:"2,keyasint"`            // base ModelID
	Coordinator string  `cbor:"3,keyasint"`            // peer ID of the coordinator
	MinUpdates  int     `cbor:"4,keyasint"`            // accepted updates needed to aggregate
	Deadline    int64   `cbor:"5,keyasint"`            // unix milliseconds
	Rule        string  `cbor:"6,keyasint"`            // aggregation rule name
	ClipNorm    float64 `cbor:"7,keyasint,omitempty"`  // 0: no bound
	ClipMode    string  `cbor:"8,keyasint,omitempty"`  // reject (or empty) | scale
	State       string  `cbor:"9,keyasint"`            // open | aggregating | done | failed
	Updates     int     `cbor:"10,keyasint,omitempty"` // accepted so far
	Rejected    int     `cbor:"11,keyasint,omitempty"` // refused so far
	NewModel    []byte  `cbor:"12,keyasint,omitempty"` // the aggregate's ModelID once done
	Error       string  `cbor:"13,keyasint,omitempty"` // why it failed
	Seq         uint64  `cbor:"14,keyasint"`           // bumped on every change; the newest wins
	OpenedAt    int64   `cbor:"15,keyasint"`           // unix milliseconds
	MaxSamples  uint64  `cbor:"16,keyasint,omitempty"` // most samples one update may claim (0: the default)
	// Secure: the round runs secure aggregation under SecAgg's parameters.
	Secure bool          `cbor:"17,keyasint,omitempty"`
	SecAgg *SecAggRecord `cbor:"18,keyasint,omitempty"`
	// Reopens: the round this one re-opens after its coordinator went silent.
	Reopens string `cbor:"19,keyasint,omitempty"`
	// The round's strategy: the server step on the aggregate and its parameters, and FedProx's μ.
	Strategy string  `cbor:"20,keyasint,omitempty"` // fedavg (or empty) | fedavgm | fedadam
	ServerLR float64 `cbor:"21,keyasint,omitempty"` // η (0: the strategy's default)
	Momentum float64 `cbor:"22,keyasint,omitempty"` // fedavgm's β, fedadam's β1
	Beta2    float64 `cbor:"23,keyasint,omitempty"` // fedadam's β2
	Tau      float64 `cbor:"24,keyasint,omitempty"` // fedadam's τ
	ProxMu   float64 `cbor:"25,keyasint,omitempty"` // FedProx μ for the built-in trainer
	// The trainers' hyperparameters (0: each trainer's own).
	Epochs       int     `cbor:"26,keyasint,omitempty"`
	BatchSize    int     `cbor:"27,keyasint,omitempty"`
	LearningRate float64 `cbor:"28,keyasint,omitempty"`
	// Campaign: the campaign the round is one of, as it stood when the round opened.
	Campaign *CampaignTagRecord `cbor:"29,keyasint,omitempty"`
	// SupersededBy (this node's own note, never announced) is the round of another coordinator
	// that re-opened this one after its coordinator went silent: the round stays failed here
	// whatever its coordinator announces once it is back.
	SupersededBy string `cbor:"31,keyasint,omitempty"`
	// Config is the round's free-form configuration for the trainers' exec hooks.
	Config map[string]any `cbor:"30,keyasint,omitempty"`
}

// CampaignTagRecord is a round's campaign tag in a RoundRecord (protocols/announce.CampaignTag,
// same tags as the announcement's).
type CampaignTagRecord struct {
	ID           string  `cbor:"1,keyasint"`
	Index        int     `cbor:"2,keyasint"`
	Rounds       int     `cbor:"3,keyasint"`
	Target       float64 `cbor:"4,keyasint,omitempty"`
	Patience     int     `cbor:"5,keyasint,omitempty"`
	Best         float64 `cbor:"6,keyasint,omitempty"`
	SinceBest    int     `cbor:"7,keyasint,omitempty"`
	Reward       string  `cbor:"8,keyasint,omitempty"`
	RoundSeconds int64   `cbor:"9,keyasint,omitempty"`
	LRDecay      float64 `cbor:"10,keyasint,omitempty"`
}

// SecAggRecord are a secure round's SecAgg+ parameters in a RoundRecord (node/secagg.Params,
// same tags as the round announcement's).
type SecAggRecord struct {
	Neighbours int     `cbor:"1,keyasint"`
	Threshold  int     `cbor:"2,keyasint"`
	Clip       float64 `cbor:"3,keyasint"`
	Bits       int     `cbor:"4,keyasint"`
	MaxWeight  uint64  `cbor:"5,keyasint"`
}

// ReportSecAgg are a secure round's SecAgg+ parameters in a ReportRecord, keyed by the admin
// API's JSON names as the rest of ReportRecord.
type ReportSecAgg struct {
	Neighbours int     `cbor:"neighbours"`
	Threshold  int     `cbor:"threshold"`
	Clip       float64 `cbor:"clip"`
	Bits       int     `cbor:"bits"`
	MaxWeight  uint64  `cbor:"max_weight"`
}

// ReportRecord is what a coordinator aggregated in a round and how, written when the round ends
// with an aggregate. Its CBOR map keys are the names the report was first stored under (the
// admin API's JSON names, which the CBOR encoder used for a type without CBOR tags), so datadirs
// written then read unchanged; the API's type is built from it at the RPC edge.
type ReportRecord struct {
	RoundID         string              `cbor:"round_id"`
	BaseModel       string              `cbor:"base_model"` // hex ModelID
	NewModel        string              `cbor:"new_model"`  // hex ModelID
	Rule            string              `cbor:"rule"`
	Participants    []ParticipantRecord `cbor:"participants"`
	AggregateSHA256 string              `cbor:"aggregate_sha256"` // hex
	Anchors         []string            `cbor:"anchors"`
	Metrics         map[string]float64  `cbor:"metrics"`
	Timings         map[string]float64  `cbor:"timings"` // seconds per step
	// Secure rounds: the trainers whose masked inputs are in the aggregate, those that joined
	// but dropped out, the SecAgg parameters, and why the round failed (a secure round that
	// fails below its dropout threshold has a report too).
	Secure       bool          `cbor:"secure,omitempty"`
	Contributors []string      `cbor:"contributors,omitempty"`
	Dropouts     []string      `cbor:"dropouts,omitempty"`
	SecAgg       *ReportSecAgg `cbor:"secagg,omitempty"`
	Error        string        `cbor:"error,omitempty"`
	// Reward is, on a trainer, what the coordinator says it paid it for the round and whether
	// the trainer found that on the ledger.
	Reward *RewardRecord `cbor:"reward,omitempty"`
}

// RewardRecord is a trainer's reward for a round in a ReportRecord.
type RewardRecord struct {
	Amount       string `cbor:"amount"`                  // base units
	AmountTokens string `cbor:"amount_tokens,omitempty"` // formatted with the ledger's decimals and symbol
	Block        uint64 `cbor:"block"`
	Payer        string `cbor:"payer"`              // principal the coordinator says it paid from
	Verified     bool   `cbor:"verified,omitempty"` // the trainer found the transfer on the ledger
	Warning      string `cbor:"warning,omitempty"`  // why it is not verified
}

// ParticipantRecord is one trainer's update in a ReportRecord.
type ParticipantRecord struct {
	PeerID   string  `cbor:"peer_id"`
	Samples  uint64  `cbor:"samples"`
	Norm     float64 `cbor:"norm"`
	Accepted bool    `cbor:"accepted"`
	Reason   string  `cbor:"reason,omitempty"`
	Clipped  bool    `cbor:"clipped,omitempty"`
	SHA256   string  `cbor:"sha256"` // hex
	// Metrics are the numbers the trainer's hook put in the update's metadata, unverified.
	Metrics map[string]float64 `cbor:"metrics,omitempty"`
}
