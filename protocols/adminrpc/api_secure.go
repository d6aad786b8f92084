package adminrpc

// SecAggParams are a secure round's SecAgg+ parameters in round_report (and the round_open
// params secure, neighbours, threshold, clip and bits that set them): the masking graph's
// degree, the shares that reconstruct a trainer's secrets, the clamp on each delta coordinate,
// the fixed-point precision and the largest weight (the round's max_samples).
type SecAggParams struct {
	Neighbours int     `json:"neighbours"`
	Threshold  int     `json:"threshold"`
	Clip       float64 `json:"clip"`
	Bits       int     `json:"bits"`
	MaxWeight  uint64  `json:"max_weight"`
}
