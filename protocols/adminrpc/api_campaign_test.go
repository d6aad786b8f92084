package adminrpc

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCampaignStartLRDecay: campaign_start's lr_decay sits beside learning_rate in the params
// object, a campaign_start without it encodes as before, and it decodes back.
func TestCampaignStartLRDecay(t *testing.T) {
	plain, _ := json.Marshal(CampaignStartParams{ModelID: "m", Rounds: 3, MinUpdates: 1})
	if strings.Contains(string(plain), "lr_decay") {
		t.Errorf("campaign_start without lr_decay encodes it: %s", plain)
	}
	var p CampaignStartParams
	if err := json.Unmarshal([]byte(`{"model_id":"m","rounds":10,"min_updates":4,"learning_rate":0.5,"lr_decay":0.85}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.LRDecay != 0.85 || p.LearningRate != 0.5 {
		t.Errorf("decoded lr_decay %g, learning_rate %g, want 0.85, 0.5", p.LRDecay, p.LearningRate)
	}
	if out, _ := json.Marshal(p); !strings.Contains(string(out), `"lr_decay":0.85`) {
		t.Errorf("encoded %s, want \"lr_decay\":0.85", out)
	}
}
