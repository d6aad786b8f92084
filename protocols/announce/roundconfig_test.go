package announce

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/califusion/califusion/protocols/wire"
)

func configRound(r *Round) *Round {
	r.Config = map[string]any{"holdout": 0.1, "optimizer": "sgd", "augment": true, "warmup": 3.0, "a_b9": -2.5}
	return r
}

// TestRoundConfigRoundTrip: a round's config survives encoding and decoding unchanged.
func TestRoundConfigRoundTrip(t *testing.T) {
	coord := newPeer(t)
	b, err := configRound(goodRound(coord)).Encode()
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRound(b, coord)
	if err != nil {
		t.Fatal(err)
	}
	if want := configRound(goodRound(coord)).Config; !reflect.DeepEqual(r.Config, want) {
		t.Errorf("DecodeRound(Encode(config %v)).Config = %v", want, r.Config)
	}
	// No config: nothing on the wire (omitempty), so older rounds encode as before.
	plain, _ := goodRound(coord).Encode()
	var raw map[int]any
	if err := wire.Unmarshal(plain, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw[30]; ok {
		t.Error("a round without config carries field 30")
	}
}

// TestRoundConfigRefusals: every bound of CheckConfig refuses, in Encode and in DecodeRound
// (a hostile coordinator's announcement), with one error naming the problem.
func TestRoundConfigRefusals(t *testing.T) {
	coord := newPeer(t)
	many := map[string]any{}
	for i := range MaxConfigKeys + 1 {
		many[fmt.Sprintf("k%d", i)] = i
	}
	big := map[string]any{}
	for i := range MaxConfigKeys {
		big[fmt.Sprintf("k%d", i)] = strings.Repeat("x", MaxConfigString)
	}
	cases := map[string]struct {
		config map[string]any
		want   string
	}{
		"too many keys":  {many, "at most 32"},
		"uppercase key":  {map[string]any{"Epochs": 1.0}, "lowercase letter"},
		"leading digit":  {map[string]any{"1x": 1.0}, "lowercase letter"},
		"empty key":      {map[string]any{"": 1.0}, "lowercase letter"},
		"long key":       {map[string]any{"k" + strings.Repeat("a", 64): 1.0}, "lowercase letter"},
		"dash key":       {map[string]any{"a-b": 1.0}, "lowercase letter"},
		"long string":    {map[string]any{"s": strings.Repeat("x", MaxConfigString+1)}, "at most 256"},
		"list":           {map[string]any{"l": []any{1.0}}, "not a list"},
		"table":          {map[string]any{"m": map[any]any{"a": 1.0}}, "not a table"},
		"null":           {map[string]any{"n": nil}, "not null"},
		"bytes":          {map[string]any{"b": []byte{1}}, "not bytes"},
		"NaN":            {map[string]any{"f": math.NaN()}, "finite"},
		"infinity":       {map[string]any{"f": math.Inf(1)}, "finite"},
		"too many bytes": {big, "bytes encoded"},
	}
	for name, c := range cases {
		err := CheckConfig(c.config)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: CheckConfig = %v, want an error saying %q", name, err, c.want)
		}
		r := goodRound(coord)
		r.Config = c.config
		if _, err := r.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Encode = %v, want ErrMalformed", name, err)
		}
		// The same config on the wire, from a coordinator that skips the check.
		r.Config = nil
		b, err := wire.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[int]any
		if err := wire.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		raw[30] = c.config
		if hostile, err := wire.Marshal(raw); err == nil {
			if _, err := DecodeRound(hostile, coord); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s: DecodeRound(hostile config) = %v, want ErrMalformed", name, err)
			}
		}
	}
	// The largest config allowed still makes a round that fits.
	r := goodRound(coord)
	r.Config = map[string]any{}
	for i := range 12 {
		r.Config[fmt.Sprintf("k%02d", i)] = strings.Repeat("x", MaxConfigString)
	}
	if err := CheckConfig(r.Config); err != nil {
		t.Fatalf("CheckConfig(12 strings of 256 bytes) = %v", err)
	}
	if _, err := r.Encode(); err != nil {
		t.Errorf("Encode(round with a large config) = %v", err)
	}
}

func FuzzDecodeRoundConfig(f *testing.F) {
	coord := newPeer(f)
	good, _ := configRound(goodRound(coord)).Encode()
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRound(b, coord)
		if err != nil {
			return
		}
		if err := CheckConfig(r.Config); err != nil {
			t.Fatalf("a decoded round's config fails its check: %v", err)
		}
		again, err := r.Encode()
		if err != nil {
			t.Fatalf("Encode(DecodeRound(%x)) = %v", b, err)
		}
		if _, err := DecodeRound(again, coord); err != nil {
			t.Fatalf("DecodeRound(re-encoded) = %v", err)
		}
	})
}
