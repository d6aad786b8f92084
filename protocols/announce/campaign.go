package announce

import (
	"fmt"
	"math"
	"regexp"
)

// CampaignTag is a campaign's state as it stood when one of its rounds opened. The round's
// coordinator signs it with the round; the lineage's other coordinators read it to go on with
// the campaign when they re-open the round after its coordinator went silent (node/campaign).
// The rounds' parameters are the round's own.
type CampaignTag struct {
	ID        string  `cbor:"1,keyasint"`           // 16 lowercase hex characters
	Index     int     `cbor:"2,keyasint"`           // this round's number in the campaign, from 1
	Rounds    int     `cbor:"3,keyasint"`           // the most rounds the campaign runs
	Target    float64 `cbor:"4,keyasint,omitempty"` // stop once a version scores this on eval_data (0: never)
	Patience  int     `cbor:"5,keyasint,omitempty"` // stop after this many rounds without a better version (0: never)
	Best      float64 `cbor:"6,keyasint,omitempty"` // the best accuracy of the rounds before this one
	SinceBest int     `cbor:"7,keyasint,omitempty"` // rounds since that best
	// Reward is what each accepted contributor is paid per published round, in the ledger's
	// base units ("": nothing). A coordinator that takes the campaign over pays at most its own
	// train.adopt_max_reward.
	Reward string `cbor:"8,keyasint,omitempty"`
	// RoundSeconds is each round's time from opening to deadline.
	RoundSeconds int64 `cbor:"9,keyasint,omitempty"`
	// LRDecay is the campaign's lr_decay (0: none): this round's learning_rate is the campaign's
	// times LRDecay^(Index−1), so a coordinator that takes the campaign over goes on decaying.
	LRDecay float64 `cbor:"10,keyasint,omitempty"`
}

// MaxCampaignRounds bounds a campaign's rounds.
const MaxCampaignRounds = 1000

var (
	campaignIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)
	rewardPattern     = regexp.MustCompile(`^[0-9]{1,30}$`)
)

// Check validates the tag.
func (t *CampaignTag) Check() error {
	switch {
	case !campaignIDPattern.MatchString(t.ID):
		return fmt.Errorf("%w: campaign ID must be 16 lowercase hex characters", ErrMalformed)
	case t.Rounds < 1 || t.Rounds > MaxCampaignRounds || t.Index < 1 || t.Index > t.Rounds:
		return fmt.Errorf("%w: campaign round %d of %d must be within 1..%d", ErrMalformed, t.Index, t.Rounds, MaxCampaignRounds)
	case !unit(t.Target) || !unit(t.Best):
		return fmt.Errorf("%w: campaign target and best accuracy must be fractions from 0 to 1", ErrMalformed)
	case t.Patience < 0 || t.Patience > MaxCampaignRounds || t.SinceBest < 0 || t.SinceBest > MaxCampaignRounds:
		return fmt.Errorf("%w: campaign patience and rounds since the best must be 0..%d", ErrMalformed, MaxCampaignRounds)
	case t.Reward != "" && !rewardPattern.MatchString(t.Reward):
		return fmt.Errorf("%w: campaign reward must be a whole number of base units", ErrMalformed)
	case t.RoundSeconds < 0 || t.RoundSeconds > 30*24*3600:
		return fmt.Errorf("%w: a campaign round's time must be within 30 days", ErrMalformed)
	case !unit(t.LRDecay):
		return fmt.Errorf("%w: a campaign's lr_decay must be a factor from 0 (none) to 1", ErrMalformed)
	}
	return nil
}

func unit(f float64) bool { return !math.IsNaN(f) && f >= 0 && f <= 1 }
