package adminrpc

// StrategyParams are a round's training strategy (additions to shared/API.md round_open, whose
// params embed them): the server-side optimiser applied to the rule's aggregate (Reddi et al.
// 2021) and FedProx's proximal μ for the trainers' built-in trainer (Li et al. 2020). Zero
// values take the defaults: strategy fedavg with server_lr 1 (the aggregate itself); fedavgm
// server_lr 1, momentum 0.9; fedadam server_lr 0.5, momentum (β1) 0.9, beta2 0.99, tau 0.03 (tuned on the devnet shards);
// prox_mu 0 (no proximal term).
type StrategyParams struct {
	Strategy string  `json:"strategy,omitempty"`  // fedavg | fedavgm | fedadam
	ServerLR float64 `json:"server_lr,omitempty"` // η
	Momentum float64 `json:"momentum,omitempty"`  // fedavgm's β, fedadam's β1
	Beta2    float64 `json:"beta2,omitempty"`     // fedadam
	Tau      float64 `json:"tau,omitempty"`       // fedadam
	ProxMu   float64 `json:"prox_mu,omitempty"`   // FedProx μ for the built-in trainer
	// The trainers' hyperparameters for the round (0: each trainer's own train settings): the
	// built-in trainer uses them and an exec hook reads them from {config}.
	Epochs       int     `json:"epochs,omitempty"`
	BatchSize    int     `json:"batch_size,omitempty"`
	LearningRate float64 `json:"learning_rate,omitempty"`
}
