package main

import (
	"testing"

	"github.com/califusion/califusion/node/devnet"
	"github.com/califusion/califusion/node/fl"
)

// TestDevnetDefaultClosesTheGap is issue 17's goal, in the in-process simulation of the devnet's
// rounds: with the devnet's default strategy the final model is within 1 point of the central
// run (plain FedAvg is not, so the test can tell the strategies apart).
func TestDevnetDefaultClosesTheGap(t *testing.T) {
	b, err := newBench(10)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.run(candidate(devnet.DefaultStrategy), devnet.DataSeed)
	if err != nil {
		t.Fatal(err)
	}
	final := res.Accuracy[len(res.Accuracy)-1]
	t.Logf("%s: final %.4f, central %.4f, gap %+.2f points", name(devnet.DefaultStrategy), final, b.central, (final-b.central)*100)
	if final < b.central-0.01 {
		t.Errorf("the devnet default %s ends at %.4f, more than 1 point below central %.4f", name(devnet.DefaultStrategy), final, b.central)
	}
	if res.Refused != 0 {
		t.Errorf("the eval floor refused %d of the default's rounds: the devnet's coordinators would fail them", res.Refused)
	}
	plain, err := b.run(candidate{Strategy: fl.StrategyFedAvg}, devnet.DataSeed)
	if err != nil {
		t.Fatal(err)
	}
	if p := plain.Accuracy[len(plain.Accuracy)-1]; p >= final {
		t.Errorf("plain fedavg ends at %.4f, not below the default's %.4f: the strategy does nothing here", p, final)
	}
}
