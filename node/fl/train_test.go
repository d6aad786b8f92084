package fl

import (
	"strconv"
	"testing"
)

const digits = "../devnet/data/digits.csv.gz"

func TestCentralTrainingOnDigits(t *testing.T) {
	d, err := LoadCSV(digits, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.X) != 1797 || len(d.X[0]) != 64 || d.Classes != 10 {
		t.Fatalf("digits = %d rows × %d features, %d classes; want 1797 × 64, 10", len(d.X), len(d.X[0]), d.Classes)
	}
	train, test := d.Split(1, 0.2)
	m, err := TrainLogReg(NewLogReg(64, 10), train, 20, 32, 0.5, 1)
	if err != nil {
		t.Fatal(err)
	}
	acc := Accuracy(m, test)
	t.Logf("central held-out accuracy: %.3f", acc)
	if acc < 0.9 {
		t.Errorf("held-out accuracy after central training = %.3f, want ≥ 0.90", acc)
	}
	if m.Metadata["samples"] != strconv.Itoa(len(train.X)) {
		t.Errorf("samples metadata = %q, want %d", m.Metadata["samples"], len(train.X))
	}
}

func TestFederatedRoundsOnSkewedShards(t *testing.T) {
	d, _ := LoadCSV(digits, 16)
	train, test := d.Split(2, 0.2)
	shards := train.Shards(4, 2, 1)
	model := NewLogReg(64, 10)
	for range 10 {
		avg := NewFedAvg(model)
		for i, s := range shards {
			u, err := TrainLogReg(model, s, 1, 32, 0.5, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Check(model, u, uint64(len(s.X)), 0); err != nil {
				t.Fatal(err)
			}
			avg.Add(u, uint64(len(s.X)))
		}
		var err error
		if model, err = avg.Result(); err != nil {
			t.Fatal(err)
		}
	}
	acc := Accuracy(model, test)
	t.Logf("federated held-out accuracy: %.3f", acc)
	if acc < 0.8 {
		t.Errorf("held-out accuracy after 10 FedAvg rounds on non-IID shards = %.3f, want ≥ 0.80", acc)
	}
}

func TestMLPOnDigits(t *testing.T) {
	d, _ := LoadCSV(digits, 16)
	train, test := d.Split(3, 0.2)
	m, err := TrainMLP(NewMLP(64, 32, 10, 1), train, 15, 32, 0.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	acc := Accuracy(m, test)
	t.Logf("MLP held-out accuracy: %.3f", acc)
	if acc < 0.9 {
		t.Errorf("MLP held-out accuracy = %.3f, want ≥ 0.90", acc)
	}
	if _, err := TrainMLP(NewLogReg(64, 10), train, 1, 32, 0.1, 1); err == nil {
		t.Errorf("TrainMLP(logistic regression model) = nil error")
	}
}

// BenchmarkTrainLogReg is one trainer's round in the devnet: 5 epochs of the built-in
// logistic-regression trainer over a 360-row digits shard (BENCHMARKS.md, "The preconditioner").
func BenchmarkTrainLogReg(b *testing.B) {
	d, err := LoadCSV(digits, 16)
	if err != nil {
		b.Fatal(err)
	}
	train, _ := d.Split(7, 0.2)
	shard := train.Shards(4, 7, 0.7)[0]
	m := NewLogReg(64, 10)
	for i := 0; b.Loop(); i++ {
		if _, err := TrainLogReg(m, shard, 5, 32, 0.2, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}
