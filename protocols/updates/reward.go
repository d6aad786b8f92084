package updates

import (
	"crypto/sha256"
	"fmt"
	"regexp"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Reward is what a round's coordinator says it paid the asking trainer for its accepted update
// (a campaign's reward, node/campaign): Amount base units in the ledger's block Block, sent from
// the account of principal Payer with the memo RewardMemo(round, trainer). Every field is the
// coordinator's word: a trainer shows the reward as verified only after it found that block on
// the ledger paying its own account exactly that, with that memo.
type Reward struct {
	Amount string `cbor:"1,keyasint"` // base units, a decimal integer > 0
	Block  uint64 `cbor:"2,keyasint"` // the ledger block of the transfer
	Payer  string `cbor:"3,keyasint"` // principal (text form) of the paying account
}

// Bounds of a Reward.
const (
	maxRewardDigits = 40 // 10^40 base units is far beyond any ledger's supply
	maxPrincipalLen = 64 // a principal's text form is at most 63 characters
)

var (
	rewardAmountPattern = regexp.MustCompile(`^[1-9][0-9]{0,39}$`)
	principalPattern    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// check validates a received reward's form (not its claims).
func (r *Reward) check() error {
	switch {
	case !rewardAmountPattern.MatchString(r.Amount):
		return fmt.Errorf("%w: reward amount %.48q is not a whole number of base units of at most %d digits", ErrReport, r.Amount, maxRewardDigits)
	case r.Payer == "" || len(r.Payer) > maxPrincipalLen || !principalPattern.MatchString(r.Payer):
		return fmt.Errorf("%w: reward payer %.72q is not a principal", ErrReport, r.Payer)
	}
	return nil
}

// rewardDomain prefixes a reward's memo.
const rewardDomain = "califusion/reward/v1"

// RewardMemo is the memo of the reward paid for trainer's accepted update in round:
// SHA-256("califusion/reward/v1" ‖ round ID ‖ trainer peer ID), binding the payment to both.
func RewardMemo(round string, trainer peer.ID) []byte {
	h := sha256.New()
	h.Write([]byte(rewardDomain))
	h.Write([]byte(round))
	h.Write([]byte(trainer))
	return h.Sum(nil)
}
