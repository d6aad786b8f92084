package updates

import (
	"testing"

	"github.com/califusion/califusion/protocols/wire"
)

// FuzzQuery decodes arbitrary round queries as a coordinator does; what decodes re-encodes to
// a query of the same round.
func FuzzQuery(f *testing.F) {
	good, _ := wire.Marshal(&Query{Round: "r1"})
	f.Add(good)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01, 0x7a, 0xff, 0xff, 0xff, 0xff}) // {1: a 4 GiB text}, truncated
	f.Fuzz(func(t *testing.T, b []byte) {
		var q Query
		if wire.Unmarshal(b, &q) != nil {
			return
		}
		enc, err := wire.Marshal(&q)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", q, err)
		}
		var again Query
		if err := wire.Unmarshal(enc, &again); err != nil || again != q {
			t.Fatalf("round trip of %+v gave %+v, %v", q, again, err)
		}
	})
}

// FuzzReport decodes arbitrary answers to a report query as a trainer does: whatever decodes
// and passes Check re-encodes within MaxReceipt and checks again.
func FuzzReport(f *testing.F) {
	good, _ := wire.Marshal(&Receipt{Report: sampleReport()})
	f.Add(good)
	rewarded, _ := wire.Marshal(&Receipt{Report: rewardedReport()})
	f.Add(rewarded)
	f.Add([]byte{0xa1, 0x09, 0xa0})                                     // {9: {}}
	f.Add([]byte{0xa1, 0x09, 0xa1, 0x07, 0x9a, 0xff, 0xff, 0xff, 0xff}) // {9: {7: an array of 4 G anchors}}, truncated
	f.Add([]byte{0xa1, 0x09, 0xa1, 0x08, 0xba, 0xff, 0xff, 0xff, 0xff}) // {9: {8: a map of 4 G metrics}}, truncated
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Receipt
		if wire.Unmarshal(b, &r) != nil || r.Report == nil || r.Report.Check() != nil {
			return
		}
		enc, err := wire.Marshal(&r)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", r.Report, err)
		}
		if len(enc) > MaxReceipt {
			t.Fatalf("a report that passes Check encodes to %d bytes, more than MaxReceipt (%d)", len(enc), MaxReceipt)
		}
		var again Receipt
		if err := wire.Unmarshal(enc, &again); err != nil || again.Report == nil || again.Report.Check() != nil {
			t.Fatalf("round trip of %+v gave %+v, %v", r.Report, again.Report, err)
		}
	})
}
