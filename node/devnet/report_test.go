package devnet

import (
	"strings"
	"testing"
)

// TestPrintParticipants: the printed report has one line per round naming each participant with
// its samples, norm, verdict (and reason) and the first digits of its update's hash.
func TestPrintParticipants(t *testing.T) {
	var b strings.Builder
	printParticipants(&b, []RoundLine{
		{Round: 1, Participants: []Participant{
			{Node: "trainer1", Samples: 359, Norm: 3.214, Verdict: "accepted", UpdateSHA256: "1a2b3c4d5e6f"},
			{Node: "trainer2", Samples: 12, Norm: 80, Verdict: "rejected", Reason: "norm", UpdateSHA256: "ffeeddccbbaa"},
		}},
	})
	for _, want := range []string{"trainer1 359 3.21 accepted 1a2b3c4d | trainer2 12 80.00 rejected:norm ffeeddcc", "   1  "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printParticipants =\n%s\nwant it to contain %q", b.String(), want)
		}
	}
}
