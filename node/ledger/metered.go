package ledger

import (
	"context"
	"math/big"
	"time"

	"github.com/califusion/califusion/node/metrics"
	"github.com/califusion/califusion/protocols/icp"
)

// Instrument returns l with every ledger call timed and its errors counted in m (l itself when
// m is nil).
func Instrument(l Ledger, m *metrics.Set) Ledger {
	if m == nil || l == nil {
		return l
	}
	return metered{inner: l, m: m}
}

// SetMetrics makes the service's ledger client report its calls to m. Call it before use.
func (s *Service) SetMetrics(m *metrics.Set) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics = m
	if s.c != nil {
		s.c = Instrument(s.c, m)
	}
}

// metered is a Ledger whose calls are observed (latency by operation, errors).
type metered struct {
	inner // every other method passes through
	m     *metrics.Set
}

// inner names the embedded Ledger (a field named Ledger would hide the method Ledger).
type inner = Ledger

func (l metered) observe(op string, began time.Time, err error) {
	l.m.ICPCall(op, time.Since(began), err)
}

func (l metered) Transfer(ctx context.Context, to icp.Account, amount *big.Int, memo []byte, createdAt time.Time) (uint64, error) {
	began := time.Now()
	idx, err := l.inner.Transfer(ctx, to, amount, memo, createdAt)
	l.observe("transfer", began, err)
	return idx, err
}

func (l metered) LogLength(ctx context.Context) (uint64, error) {
	began := time.Now()
	n, err := l.inner.LogLength(ctx)
	l.observe("log_length", began, err)
	return n, err
}

func (l metered) FindTransfer(ctx context.Context, from uint64, s icp.Sent) (uint64, bool, error) {
	began := time.Now()
	idx, found, err := l.inner.FindTransfer(ctx, from, s)
	l.observe("find_transfer", began, err)
	return idx, found, err
}

func (l metered) VerifyPayment(ctx context.Context, block uint64, want icp.Expect) (*icp.Payment, error) {
	began := time.Now()
	p, err := l.inner.VerifyPayment(ctx, block, want)
	l.observe("verify_payment", began, err)
	return p, err
}

func (l metered) Balance(ctx context.Context, a icp.Account) (*big.Int, error) {
	began := time.Now()
	b, err := l.inner.Balance(ctx, a)
	l.observe("balance", began, err)
	return b, err
}

func (l metered) Token(ctx context.Context) (icp.Token, error) {
	began := time.Now()
	t, err := l.inner.Token(ctx)
	l.observe("token", began, err)
	return t, err
}

func (l metered) Kind(ctx context.Context) (icp.LedgerKind, error) {
	began := time.Now()
	k, err := l.inner.Kind(ctx)
	l.observe("kind", began, err)
	return k, err
}
