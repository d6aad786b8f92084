package main

import (
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/spf13/pflag"
)

// secureRoundFlags adds round open's secure aggregation flags (round_open's secure, neighbours,
// threshold, clip and bits).
func secureRoundFlags(fs *pflag.FlagSet, p *adminrpc.RoundOpenParams) {
	fs.BoolVar(&p.Secure, "secure", false, "secure aggregation (SecAgg+): the coordinator sees only the sum of the trainers' masked deltas; needs rule fedavg, and clip-mode scale with a clip-norm")
	fs.IntVar(&p.Neighbours, "neighbours", 0, "secure: degree of the masking graph (0: the default for min-updates trainers)")
	fs.IntVar(&p.Threshold, "threshold", 0, "secure: shares that reconstruct a trainer's secrets, more than half the degree (0: the default)")
	fs.Float64Var(&p.Clip, "clip", 0, "secure: each delta coordinate is clamped to ±clip before masking (0: the default, 1)")
	fs.IntVar(&p.Bits, "bits", 0, "secure: fixed-point precision in bits (0: the default, 24)")
}
