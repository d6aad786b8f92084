package fl

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestWeightCeiling: with MaxWeight set, an update claiming more samples weighs the ceiling,
// folded in memory (Add) or streamed (AddFrom).
func TestWeightCeiling(t *testing.T) {
	base := NewLogReg(2, 2)
	one, zero := NewLogReg(2, 2), NewLogReg(2, 2)
	for i := range one.Tensors {
		for j := 0; j < one.Tensors[i].Elements(); j++ {
			one.Tensors[i].Set(j, 1)
		}
	}
	raw, err := zero.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []bool{false, true} {
		a := NewFedAvg(base)
		a.MaxWeight = 10
		a.Add(one, 10)
		if stream {
			if err := a.AddFrom(bytes.NewReader(raw), int64(len(raw)), 1<<40); err != nil {
				t.Fatal(err)
			}
		} else {
			a.Add(zero, 1<<40)
		}
		got, err := a.Result()
		if err != nil {
			t.Fatal(err)
		}
		if v := got.Tensors[0].At(0); v != 0.5 {
			t.Errorf("FedAvg(1 with 10 samples, 0 with 2^40, ceiling 10; stream %v) = %v, want 0.5", stream, v)
		}
	}
	if w := (&FedAvg{}).Weight(1 << 40); w != 1<<40 {
		t.Errorf("Weight without a ceiling = %v, want the claim", w)
	}
}

// TestParseFileAgreesWithParse: ParseFile accepts and refuses what Parse does.
func TestParseFileAgreesWithParse(t *testing.T) {
	good, _ := NewLogReg(3, 2).Encode()
	dir := t.TempDir()
	for name, b := range map[string][]byte{"good": good, "short": good[:5], "truncated": good[:len(good)-1], "trailing": append(append([]byte{}, good...), 0), "garbage": []byte("0123456789abcdef")} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, b, 0o600)
		_, perr := Parse(b)
		f, ferr := ParseFile(path, 1<<20)
		if (perr == nil) != (ferr == nil) {
			t.Errorf("%s: Parse = %v, ParseFile = %v, want both to agree", name, perr, ferr)
		}
		if ferr == nil && len(f.Tensors) != 2 {
			t.Errorf("%s: ParseFile found %d tensors, want 2", name, len(f.Tensors))
		}
	}
	path := filepath.Join(dir, "good")
	if _, err := ParseFile(path, int64(len(good)-1)); err == nil {
		t.Errorf("ParseFile over its limit = nil error")
	}
}
