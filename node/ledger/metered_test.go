package ledger_test

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The instrumented ledger observes each call's latency by operation and counts its errors; the
// service hands it out once SetMetrics was called, and without metrics the client is the same.
func TestInstrumentedLedger(t *testing.T) {
	fake := ledgertest.NewFake(1_000_000)
	if got := ledger.Instrument(fake, nil); got != ledger.Ledger(fake) {
		t.Error("Instrument(l, nil) is not l")
	}
	m := metrics.New(metrics.Build{})
	svc := ledger.NewWith(config.Default().ICP, nil, fake)
	svc.SetMetrics(m)
	lc, err := svc.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	to := icp.Account{Owner: ledgertest.Principal("payee")}
	if _, err := lc.Transfer(ctx, to, big.NewInt(10), []byte("m"), time.Now()); err != nil {
		t.Fatal(err)
	}
	fake.FailNext(errors.New("replica down"))
	if _, err := lc.Transfer(ctx, to, big.NewInt(10), []byte("m2"), time.Now()); err == nil {
		t.Fatal("the failed transfer succeeded")
	}
	if _, err := lc.LogLength(ctx); err != nil {
		t.Fatal(err)
	}
	if lc.Ledger().Encode() != fake.Ledger().Encode() {
		t.Error("Ledger() does not pass through")
	}
	count := func(op string) uint64 { return metrics.SampleCount(m.ICPCallDuration, op) }
	if got := count("transfer"); got != 2 {
		t.Errorf("transfer latencies observed = %d, want 2", got)
	}
	if got := count("log_length"); got != 1 {
		t.Errorf("log_length latencies observed = %d, want 1", got)
	}
	if got := testutil.ToFloat64(m.ICPCallErrors.WithLabelValues("transfer")); got != 1 {
		t.Errorf("transfer errors = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.ICPCallErrors.WithLabelValues("log_length")); got != 0 {
		t.Errorf("log_length errors = %v, want 0", got)
	}
}
