package keys

import (
	"testing"

	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Paying moves the payments counter by result and adds the amount and the ledger fee; the
// coordinator counts the key it releases, and a refusal by its class.
func TestPaymentAndReleaseMetrics(t *testing.T) {
	u := newUnlockNet(t, contenttest.NewSigner(t))
	coordM, payM := metrics.New(metrics.Build{}), metrics.New(metrics.Build{})
	u.coord.cfg.Metrics = coordM
	c, _ := u.client(t, 2, nil, u.coord.id)
	c.cfg.Metrics = payM
	if err := c.Unlock(t.Context(), u.r, nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pay(t.Context(), u.r, false); err != nil { // paid before: already_paid
		t.Fatal(err)
	}
	for _, x := range []struct {
		name      string
		got, want float64
	}{
		{"payments ok", testutil.ToFloat64(payM.Payments.WithLabelValues(metrics.ResultOK)), 1},
		{"payments already", testutil.ToFloat64(payM.Payments.WithLabelValues(metrics.ResultAlready)), 1},
		{"payments error", testutil.ToFloat64(payM.Payments.WithLabelValues(metrics.ResultError)), 0},
		{"amount", testutil.ToFloat64(payM.PaidAmount), 1},
		{"fees", testutil.ToFloat64(payM.FeesPaid), 10},
		{"released", testutil.ToFloat64(coordM.KeyReleases.WithLabelValues("released")), 1},
	} {
		if x.got != x.want {
			t.Errorf("%s = %v, want %v", x.name, x.got, x.want)
		}
	}
	if got := releaseResult(refuse(1004, "used")); got != "payment_used" {
		t.Errorf("releaseResult(payment used) = %q", got)
	}
	if got := releaseResult(nil); got != "internal" {
		t.Errorf("releaseResult(nil) = %q", got)
	}
}
