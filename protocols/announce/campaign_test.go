package announce

import (
	"errors"
	"math"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func campaignRound(t testing.TB) *Round {
	r := goodRound(newPeer(t))
	r.Campaign = &CampaignTag{ID: "00112233aabbccdd", Index: 2, Rounds: 10, Target: 0.95, Patience: 3, Best: 0.9, SinceBest: 1, Reward: "100000", RoundSeconds: 300}
	return r
}

func TestCampaignTagRoundTrip(t *testing.T) {
	r := campaignRound(t)
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	coord, _ := peerOf(r)
	got, err := DecodeRound(b, coord)
	if err != nil {
		t.Fatal(err)
	}
	if got.Campaign == nil || *got.Campaign != *r.Campaign {
		t.Fatalf("campaign tag = %+v, want %+v", got.Campaign, r.Campaign)
	}
}

func TestCampaignTagRefusals(t *testing.T) {
	bad := []func(c *CampaignTag){
		func(c *CampaignTag) { c.ID = "XYZ" },
		func(c *CampaignTag) { c.ID = "00112233aabbccddee" },
		func(c *CampaignTag) { c.Index = 0 },
		func(c *CampaignTag) { c.Index = 11 },
		func(c *CampaignTag) { c.Rounds, c.Index = MaxCampaignRounds+1, 1 },
		func(c *CampaignTag) { c.Target = 1.5 },
		func(c *CampaignTag) { c.Best = math.NaN() },
		func(c *CampaignTag) { c.Patience = -1 },
		func(c *CampaignTag) { c.SinceBest = MaxCampaignRounds + 1 },
		func(c *CampaignTag) { c.Reward = "-5" },
		func(c *CampaignTag) { c.Reward = "1e9" },
		func(c *CampaignTag) { c.RoundSeconds = -1 },
	}
	for i, mutate := range bad {
		r := campaignRound(t)
		mutate(r.Campaign)
		if _, err := r.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: Encode = %v, want ErrMalformed", i, err)
		}
	}
}

func peerOf(r *Round) (coord peer.ID, err error) { return peer.Decode(r.Coordinator) }
