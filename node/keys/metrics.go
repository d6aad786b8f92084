package keys

import (
	"math/big"

	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/apierr"
	keyswire "github.com/califusion/califusion/protocols/keys"
)

// recordPayment counts a pay call's outcome; a payment made now adds its amount and the ledger
// fee (when the token details were read).
func (c *Client) recordPayment(res Payment, err error) {
	if c.cfg.Metrics == nil {
		return
	}
	switch {
	case err != nil:
		c.cfg.Metrics.Paid(metrics.ResultError, nil, nil)
	case res.AlreadyPaid:
		c.cfg.Metrics.Paid(metrics.ResultAlready, nil, nil)
	default:
		amount, _ := new(big.Int).SetString(res.Amount, 10)
		var fee *big.Int
		if lc, err := c.deps.Ledger.Client(); err == nil {
			if tok, ok := lc.CachedToken(); ok {
				fee = tok.Fee
			}
		}
		c.cfg.Metrics.Paid(metrics.ResultOK, amount, fee)
	}
}

// releaseNames are the key-release results by refusal code (low cardinality: a fixed set).
var releaseNames = map[int]string{
	apierr.NotFound: "not_found", apierr.PaymentInvalid: "payment_invalid", apierr.PaymentInsufficient: "payment_insufficient",
	apierr.PaymentUsed: "payment_used", apierr.Integrity: "integrity", apierr.NotUnlocked: "not_unlocked",
	apierr.Unavailable: "unavailable", apierr.InvalidParams: "invalid_params", apierr.Internal: "internal",
}

// releaseResult names an unlock answer for the key-release counter.
func releaseResult(res *keyswire.Result) string {
	switch {
	case res == nil:
		return "internal"
	case res.Code == 0 && len(res.Key) > 0:
		return "released"
	}
	if n, ok := releaseNames[res.Code]; ok {
		return n
	}
	return "other"
}
