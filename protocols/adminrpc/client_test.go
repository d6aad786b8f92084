package adminrpc

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestModelPayParams checks what the typed client sends as model_pay's params: ModelPay the
// model ID alone, ModelPayWith also again.
func TestModelPayParams(t *testing.T) {
	s := NewServer(testToken, slog.New(slog.DiscardHandler), nil, nil)
	got := make(chan PayParams, 1)
	Handle(s, "model_pay", func(ctx context.Context, p PayParams) (PayResult, error) {
		got <- p
		return PayResult{BlockIndex: 7, AlreadyPaid: !p.Again}, nil
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	c := NewClient(strings.TrimPrefix(ts.URL, "http://"), testToken)

	tests := []struct {
		name string
		call func() (PayResult, error)
		want PayParams
	}{
		{"ModelPay", func() (PayResult, error) { return c.ModelPay(t.Context(), "ab") }, PayParams{ModelID: "ab"}},
		{"ModelPayWith again", func() (PayResult, error) {
			return c.ModelPayWith(t.Context(), PayParams{ModelID: "cd", Again: true})
		}, PayParams{ModelID: "cd", Again: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			if p := <-got; p != tt.want {
				t.Errorf("%s sent %+v, want %+v", tt.name, p, tt.want)
			}
			if r.BlockIndex != 7 || r.AlreadyPaid == tt.want.Again {
				t.Errorf("%s = %+v, want block 7 and already_paid %v", tt.name, r, !tt.want.Again)
			}
		})
	}
}
