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
