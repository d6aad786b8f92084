package node

import (
	"testing"
	"time"
)

func TestCatalogIndexListsInOrderAddedSince(t *testing.T) {
	x := &catalogIndex{}
	t0 := time.Now()
	for i, d := range []time.Duration{0, 2, 1, 5, 3} { // 1 and 3 arrive late
		x.note([32]byte{byte(i)}, t0.Add(d*time.Millisecond))
	}
	var got []byte
	x.Added(t0.Add(2*time.Millisecond), func(id [32]byte, at time.Time) bool {
		got = append(got, id[0])
		return true
	})
	if want := []byte{1, 4, 3}; string(got) != string(want) { // added at 2, 3, 5 ms
		t.Errorf("Added(since 2ms) = %v, want %v", got, want)
	}
	got = got[:0]
	x.Added(time.Time{}, func(id [32]byte, _ time.Time) bool { got = append(got, id[0]); return len(got) < 2 })
	if want := []byte{0, 2}; string(got) != string(want) {
		t.Errorf("Added(everything) stopped after two = %v, want %v", got, want)
	}
}
