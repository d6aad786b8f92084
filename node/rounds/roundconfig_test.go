package rounds

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/apierr"
)

// TestOpenTakesRoundConfig: round_open's config reaches the announced round; a config that
// CheckConfig refuses is an invalid_params refusal naming the problem.
func TestOpenTakesRoundConfig(t *testing.T) {
	n := newNode(t, config.RoleCoordinator)
	cfg := map[string]any{"holdout": 0.2, "optimizer": "adamw"}
	_, model, id := roundOn(t, n, OpenParams{MinUpdates: 1, Deadline: "10m", Config: cfg})
	r, err := n.s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Config, cfg) {
		t.Errorf("round config = %v, want %v", r.Config, cfg)
	}
	for name, bad := range map[string]map[string]any{
		"uppercase key": {"Holdout": 0.1},
		"list value":    {"layers": []any{1.0, 2.0}},
		"long string":   {"note": strings.Repeat("x", 257)},
	} {
		_, err := n.s.Open(t.Context(), OpenParams{ModelID: modelHex(model), MinUpdates: 1, Deadline: "1m", Config: bad})
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != apierr.InvalidParams || !strings.Contains(ae.Message, "config") {
			t.Errorf("%s: Open = %v, want invalid_params naming the config", name, err)
		}
	}
}
