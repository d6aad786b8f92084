package config

import (
	"strings"
	"testing"
)

// TestMaxRoundEpochs: train.max_round_epochs defaults to 50, takes 0 (no cap) and refuses a
// negative cap with an error naming the key.
func TestMaxRoundEpochs(t *testing.T) {
	if got := Default().Train.MaxRoundEpochs; got != 50 {
		t.Errorf("Default().Train.MaxRoundEpochs = %d, want 50", got)
	}
	cfg, err := Parse([]byte("[train]\nmax_round_epochs = 0\n"))
	if err != nil || cfg.Train.MaxRoundEpochs != 0 {
		t.Errorf("Parse(max_round_epochs = 0) = %+v, %v; want 0 (no cap)", cfg, err)
	}
	if _, err := Parse([]byte("[train]\nmax_round_epochs = -1\n")); err == nil || !strings.Contains(err.Error(), "train.max_round_epochs") {
		t.Errorf("Parse(max_round_epochs = -1) = %v, want an error naming train.max_round_epochs", err)
	}
}
