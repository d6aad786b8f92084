package adminrpc

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestStrategyParamsAreFlat: round_open's strategy params sit beside the others in the params
// object (strategy, server_lr, …), a round_open without them encodes as before, and they decode
// back.
func TestStrategyParamsAreFlat(t *testing.T) {
	plain, _ := json.Marshal(RoundOpenParams{ModelID: "m", MinUpdates: 1, Deadline: "1m", Rule: "fedavg"})
	if strings.Contains(string(plain), "strategy") || strings.Contains(string(plain), "prox_mu") {
		t.Errorf("round_open without a strategy encodes strategy keys: %s", plain)
	}
	in := `{"model_id":"m","min_updates":1,"deadline":"1m","rule":"fedavg","strategy":"fedadam","server_lr":0.5,"momentum":0.9,"beta2":0.99,"tau":0.03,"prox_mu":0.01}`
	var p RoundOpenParams
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	want := StrategyParams{Strategy: "fedadam", ServerLR: 0.5, Momentum: 0.9, Beta2: 0.99, Tau: 0.03, ProxMu: 0.01}
	if p.StrategyParams != want {
		t.Errorf("decoded %+v, want %+v", p.StrategyParams, want)
	}
	out, _ := json.Marshal(p)
	if !strings.Contains(string(out), `"strategy":"fedadam"`) || !strings.Contains(string(out), `"prox_mu":0.01`) {
		t.Errorf("encoded %s, want the strategy keys flat", out)
	}
}
