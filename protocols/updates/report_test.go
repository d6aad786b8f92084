package updates

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sampleReport is a valid report for trainer (a fixed peer ID when empty).
func sampleReport() *Report {
	return &Report{
		Round: "r1", BaseModel: make([]byte, 32), NewModel: append(make([]byte, 31), 1), Rule: "fedavg",
		AggregateSHA256: make([]byte, 32),
		Verdict: Verdict{
			Trainer: "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf", Samples: 10, Norm: 1.5,
			Accepted: true, SHA256: make([]byte, 32), Metrics: map[string]float64{"train_accuracy": 0.9},
		},
		Anchors: []string{"califusion/anchor/v1/u"},
		Metrics: map[string]float64{"accepted": 2, "accuracy": 0.8},
	}
}

// TestReportQuery: a trainer that submitted gets its report; another peer gets the server's
// refusal unchanged; a malformed query is -32602.
func TestReportQuery(t *testing.T) {
	a, b := pair(t)
	srv := kex.NewServer(t.Context(), b, quiet)
	us := NewServer(srv, &Coordinator{
		Report: func(ctx context.Context, from peer.ID, q *Query) *Receipt {
			if from != a.ID() || q.Round != "r1" {
				return &Receipt{Code: 1009, Message: "only the round's trainers"}
			}
			rep := sampleReport()
			rep.Verdict.Trainer = from.String()
			return &Receipt{Report: rep}
		},
	})
	defer us.Close()
	rep, err := RequestReport(t.Context(), a, b.ID(), "r1")
	if err != nil || rep.Verdict.Trainer != a.ID().String() || rep.Verdict.Samples != 10 || rep.Metrics["accuracy"] != 0.8 {
		t.Fatalf("RequestReport(r1) = %+v, %v; want the trainer's verdict and the metrics", rep, err)
	}
	var refusal *Error
	if _, err := RequestReport(t.Context(), a, b.ID(), "r2"); !errors.As(err, &refusal) || refusal.Code != 1009 {
		t.Errorf("RequestReport(r2) = %v, want an *Error with code 1009", err)
	}
	if _, err := Request(t.Context(), a, b.ID(), PurposeReport, map[int]string{9: "x"}); !errors.As(err, &refusal) || refusal.Code != -32602 {
		t.Errorf("Request(malformed report query) = %v, want code -32602", err)
	}
	if _, err := Request(t.Context(), a, b.ID(), PurposeRound, &Query{Round: "r1"}); err == nil {
		t.Errorf("Request(round) on a server with only a report handler = nil error, want the purpose unserved")
	}
}

// TestReportAnswersChecked: a coordinator that answers with another trainer's report, another
// round's, a report beyond its bounds or no report at all is refused by the trainer.
func TestReportAnswersChecked(t *testing.T) {
	a, b := pair(t)
	var answer func(rep *Report) *Receipt
	srv := kex.NewServer(t.Context(), b, quiet)
	NewServer(srv, &Coordinator{Report: func(ctx context.Context, from peer.ID, q *Query) *Receipt {
		rep := sampleReport()
		rep.Verdict.Trainer = from.String()
		return answer(rep)
	}})
	for _, tc := range []struct {
		name string
		edit func(*Report) *Receipt
	}{
		{"another trainer's", func(r *Report) *Receipt { r.Verdict.Trainer = b.ID().String(); return &Receipt{Report: r} }},
		{"another round's", func(r *Report) *Receipt { r.Round = "r9"; return &Receipt{Report: r} }},
		{"no report", func(r *Report) *Receipt { return &Receipt{} }},
		{"too many anchors", func(r *Report) *Receipt {
			for len(r.Anchors) <= MaxReportAnchors {
				r.Anchors = append(r.Anchors, "a")
			}
			return &Receipt{Report: r}
		}},
		{"too many metrics", func(r *Report) *Receipt {
			for i := 0; len(r.Metrics) <= MaxReportMetrics; i++ {
				r.Metrics[strings.Repeat("m", i+1)] = 1
			}
			return &Receipt{Report: r}
		}},
		{"short model ID", func(r *Report) *Receipt { r.NewModel = r.NewModel[:8]; return &Receipt{Report: r} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer = tc.edit
			if rep, err := RequestReport(t.Context(), a, b.ID(), "r1"); !errors.Is(err, ErrReport) {
				t.Errorf("RequestReport with %s answer = %+v, %v; want an error wrapping ErrReport", tc.name, rep, err)
			}
		})
	}
}

// TestReportBoundsFit: a report at every bound of Check still fits in MaxReceipt.
func TestReportBoundsFit(t *testing.T) {
	r := sampleReport()
	r.Round, r.Rule, r.Verdict.Reason = strings.Repeat("r", maxRoundLen), strings.Repeat("x", maxRuleLen), strings.Repeat("y", maxReasonLen)
	r.Anchors = nil
	for len(r.Anchors) < MaxReportAnchors {
		r.Anchors = append(r.Anchors, strings.Repeat("a", maxAnchorLen))
	}
	r.Metrics, r.Verdict.Metrics = map[string]float64{}, map[string]float64{}
	for i := 0; len(r.Metrics) < MaxReportMetrics; i++ {
		k := strings.Repeat("k", maxMetricKey-3) + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "z"
		r.Metrics[k], r.Verdict.Metrics[k] = 1e300, -1e300
	}
	if err := r.Check(); err != nil {
		t.Fatalf("Check(a report at its bounds) = %v, want nil", err)
	}
	b, err := wire.Marshal(&Receipt{Report: r, Message: strings.Repeat("m", 200)})
	if err != nil || len(b) > MaxReceipt {
		t.Errorf("a report at its bounds encodes to %d bytes (%v), want at most MaxReceipt = %d", len(b), err, MaxReceipt)
	}
}

// TestReportTrim: a report with too much of everything is trimmed to pass Check.
func TestReportTrim(t *testing.T) {
	r := sampleReport()
	for i := range 3 * MaxReportMetrics {
		r.Metrics[strings.Repeat("k", 1+i%70)+string(rune('a'+i/70))] = float64(i)
	}
	r.Metrics["bad"] = math.NaN()
	for range 2 * MaxReportAnchors {
		r.Anchors = append(r.Anchors, "", strings.Repeat("a", maxAnchorLen+1), "ok")
	}
	r.Verdict.Reason = strings.Repeat("why", 100)
	r.Trim()
	if err := r.Check(); err != nil || len(r.Metrics) != MaxReportMetrics || len(r.Anchors) != MaxReportAnchors || r.Anchors[0] != "califusion/anchor/v1/u" {
		t.Errorf("Check(trimmed) = %v with %d metrics and anchors %q; want nil, %d metrics, the first %d good anchors", err, len(r.Metrics), r.Anchors, MaxReportMetrics, MaxReportAnchors)
	}
}
