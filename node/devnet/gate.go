package devnet

// The gate trainer. Trainers join the campaign's rounds by themselves (train.auto); the story
// places its two incidents — the kill of the campaign's coordinator while round 2 is open, and a
// trainer that crashes after sending its key shares in dropRound — by configuring and restarting
// one trainer, the last, between rounds: each life of it joins at most a given number of rounds
// (train.auto_max_per_hour, counted from its start) and may carry the failpoint
// CALIFUSION_CRASH_AT=secagg-shares-sent. Every round needs all the trainers (min_updates), so a
// round the gate trainer may not join yet stays open: round 2 on the first coordinator until the
// story killed it, round dropRound until the gate trainer is back with its failpoint.

// crashAtShares is the failpoint that makes a trainer crash right after it sent its key shares.
const crashAtShares = "CALIFUSION_CRASH_AT=secagg-shares-sent"

// gateEvent is what ends a life of the gate trainer.
type gateEvent struct {
	reopened bool // the round the killed coordinator left open was re-opened by another
	ended    int  // campaign round n (1-based) ended
}

// gateLife is one start of the gate trainer.
type gateLife struct {
	crash bool      // started with the failpoint: it crashes after sending its shares
	cap   int       // train.auto_max_per_hour for this start (0: the default)
	until gateEvent // the restart into the next life waits for this; the last life has none
}

// gatePlan returns the lives of the gate trainer for a story that kills the campaign's first
// coordinator while round 2 is open (kill) and makes a trainer drop out in round drop (0: no
// dropout); nil when the story needs no gate.
func gatePlan(kill bool, drop int) []gateLife {
	var out []gateLife
	switch {
	case kill:
		out = append(out, gateLife{cap: 1, until: gateEvent{reopened: true}}) // round 1; round 2 stays open on the victim
		if drop > 2 {
			out = append(out, gateLife{cap: drop - 2, until: gateEvent{ended: drop - 1}}) // the re-opened round 2 and up to drop-1
		}
		if drop >= 2 {
			out = append(out, gateLife{crash: true, cap: 1, until: gateEvent{ended: drop}})
		}
	case drop > 1:
		out = append(out, gateLife{cap: drop - 1, until: gateEvent{ended: drop - 1}}, gateLife{crash: true, cap: 1, until: gateEvent{ended: drop}})
	case drop == 1:
		out = append(out, gateLife{crash: true, cap: 1, until: gateEvent{ended: 1}})
	default:
		return nil
	}
	return append(out, gateLife{})
}

// env is the environment of a life's start.
func (l gateLife) env() []string {
	if l.crash {
		return []string{crashAtShares}
	}
	return nil
}
