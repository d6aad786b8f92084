package devnet

import (
	"fmt"
	"testing"
)

// TestGatePlan: the gate trainer's lives place the story's incidents. With the kill it joins
// round 1 only (round 2 stays open on the coordinator the story kills), then, once round 2 was
// re-opened elsewhere, the rounds up to the dropout round, then that round with the failpoint,
// then every round; without the kill its first life joins the rounds before the dropout. Every
// round of the campaign is joined in exactly one life, and only the dropout round with the
// failpoint.
func TestGatePlan(t *testing.T) {
	for _, c := range []struct {
		kill bool
		drop int
		want string
	}{
		{false, 0, "[]"},
		{true, 0, "[{false 1 {true 0}} {false 0 {false 0}}]"},
		{true, 2, "[{false 1 {true 0}} {true 1 {false 2}} {false 0 {false 0}}]"},
		{true, 3, "[{false 1 {true 0}} {false 1 {false 2}} {true 1 {false 3}} {false 0 {false 0}}]"},
		{false, 1, "[{true 1 {false 1}} {false 0 {false 0}}]"},
		{false, 3, "[{false 2 {false 2}} {true 1 {false 3}} {false 0 {false 0}}]"},
	} {
		got := gatePlan(c.kill, c.drop)
		if fmt.Sprint(got) != c.want {
			t.Errorf("gatePlan(kill %v, drop %d) = %v, want %s", c.kill, c.drop, got, c.want)
		}
		if len(got) == 0 {
			continue
		}
		// Which rounds each life joins, counted as the story runs: the kill's first life ends
		// with round 2 still to join; a life with a cap joins that many rounds.
		next, crashes := 1, 0
		for i, l := range got[:len(got)-1] {
			if l.crash {
				crashes++
				if next != c.drop {
					t.Errorf("gatePlan(kill %v, drop %d): life %d carries the failpoint into round %d", c.kill, c.drop, i, next)
				}
			}
			next += l.cap
			if !l.until.reopened && l.until.ended != next-1 {
				t.Errorf("gatePlan(kill %v, drop %d): life %d joins up to round %d but ends after round %d", c.kill, c.drop, i, next-1, l.until.ended)
			}
		}
		if last := got[len(got)-1]; last.crash || last.cap != 0 || (c.drop > 0 && crashes != 1) {
			t.Errorf("gatePlan(kill %v, drop %d) = %v: want one life with the failpoint and a last life without cap or failpoint", c.kill, c.drop, got)
		}
	}
	if env := (gateLife{crash: true}).env(); len(env) != 1 || env[0] != crashAtShares {
		t.Errorf("env of a crashing life = %q, want %q", env, crashAtShares)
	}
	if autoCap(0) <= 0 || autoCap(2) != 2 {
		t.Errorf("autoCap(0), autoCap(2) = %d, %d; want the default cap and 2", autoCap(0), autoCap(2))
	}
}
