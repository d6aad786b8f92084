package anchoring

import (
	"context"
	"time"

	"github.com/califusion/califusion/node/metrics"
)

// Instrument returns a with every Calimero call timed, its errors counted and the anchor results
// counted by operation and state in m (a itself when m or a is nil).
func Instrument(a Anchors, m *metrics.Set) Anchors {
	if m == nil || a == nil {
		return a
	}
	return metered{a: a, m: m}
}

// SetMetrics makes the service report its Calimero calls to m. Call it before use.
func (s *Service) SetMetrics(m *metrics.Set) {
	s.anchors = Instrument(s.anchors, m)
	s.metrics = m
}

type metered struct {
	a Anchors
	m *metrics.Set
}

func (x metered) Put(ctx context.Context, record []byte) ([32]byte, error) {
	began := time.Now()
	id, err := x.a.Put(ctx, record)
	x.m.CalimeroCall("put", time.Since(began), err)
	state := metrics.ResultOK
	if err != nil {
		state = metrics.StateError
	}
	x.m.Anchor("put", state)
	return id, err
}

func (x metered) Get(ctx context.Context, id [32]byte, verify func(record []byte) error) ([]byte, string, error) {
	began := time.Now()
	rec, state, err := x.a.Get(ctx, id, verify)
	// A readable anchor that is missing or invalid is an answer, not a failed call.
	var callErr error
	if state == "" {
		callErr = err
	}
	x.m.CalimeroCall("get", time.Since(began), callErr)
	if state == "" {
		x.m.Anchor("get", metrics.StateError)
	} else {
		x.m.Anchor("get", state)
	}
	return rec, state, err
}

func (x metered) List(ctx context.Context, verify func(record []byte) error) ([][]byte, int, error) {
	began := time.Now()
	recs, invalid, err := x.a.List(ctx, verify)
	x.m.CalimeroCall("list", time.Since(began), err)
	state := metrics.ResultOK
	if err != nil {
		state = metrics.StateError
	}
	x.m.Anchor("list", state)
	return recs, invalid, err
}
