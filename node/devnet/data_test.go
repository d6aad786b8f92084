package devnet

import (
	"path/filepath"
	"testing"

	"github.com/califusion/califusion/node/fl"
)

// TestDigitsEmbedded: the binary carries the whole digits dataset (data/README.md), and WriteCSV
// writes rows that fl reads back unchanged, as the trainers' shards are written and read.
func TestDigitsEmbedded(t *testing.T) {
	d, err := LoadDigits()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.X) != 1797 || len(d.Y) != 1797 {
		t.Fatalf("LoadDigits() = %d rows, %d labels, want 1797 of each", len(d.X), len(d.Y))
	}
	for i, row := range d.X {
		if len(row) != DigitsFeatures || d.Y[i] < 0 || d.Y[i] >= DigitsClasses {
			t.Fatalf("row %d = %d features, label %d, want %d features and a label in [0, %d)", i, len(row), d.Y[i], DigitsFeatures, DigitsClasses)
		}
		for _, v := range row {
			if v < 0 || v > 1 {
				t.Fatalf("row %d has feature %v, want it scaled into [0, 1]", i, v)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "shard.csv")
	if err := WriteCSV(path, d); err != nil {
		t.Fatal(err)
	}
	back, err := fl.LoadCSV(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.X) != len(d.X) {
		t.Fatalf("WriteCSV then LoadCSV = %d rows, want %d", len(back.X), len(d.X))
	}
	for i := range d.X {
		if back.Y[i] != d.Y[i] {
			t.Fatalf("row %d label read back = %d, want %d", i, back.Y[i], d.Y[i])
		}
		for j, v := range d.X[i] {
			if back.X[i][j] != v {
				t.Fatalf("row %d feature %d read back = %v, want %v", i, j, back.X[i][j], v)
			}
		}
	}
}
