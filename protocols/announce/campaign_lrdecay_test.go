package announce

import (
	"errors"
	"math"
	"testing"
)

// A campaign tag's lr_decay survives the wire, and one outside [0, 1] is refused.
func TestCampaignTagLRDecay(t *testing.T) {
	r := campaignRound(t)
	r.Campaign.LRDecay = 0.85
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	coord, _ := peerOf(r)
	got, err := DecodeRound(b, coord)
	if err != nil {
		t.Fatal(err)
	}
	if got.Campaign == nil || got.Campaign.LRDecay != 0.85 {
		t.Fatalf("campaign tag = %+v, want lr_decay 0.85", got.Campaign)
	}
	for _, d := range []float64{-0.1, 1.5, math.NaN(), math.Inf(1)} {
		r := campaignRound(t)
		r.Campaign.LRDecay = d
		if _, err := r.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("lr_decay %g: Encode = %v, want ErrMalformed", d, err)
		}
	}
}
