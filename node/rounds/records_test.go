package rounds

import (
	"reflect"
	"testing"

	"github.com/califusion/califusion/node/internal/testfill"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
)

func TestRoundRecordConversion(t *testing.T) {
	var r announce.Round
	testfill.Fill(t, reflect.ValueOf(&r))
	if got := roundOf(roundRecord(&r)); !reflect.DeepEqual(got, r) {
		t.Errorf("roundOf(roundRecord(%+v)) = %+v, want it unchanged", r, got)
	}
	var rec store.RoundRecord
	testfill.Fill(t, reflect.ValueOf(&rec))
	rec.SupersededBy = "" // this node's own note on a record, never part of a round as announced
	back := roundOf(&rec)
	if got := roundRecord(&back); !reflect.DeepEqual(*got, rec) {
		t.Errorf("roundRecord(roundOf(%+v)) = %+v, want it unchanged", rec, *got)
	}
}

// TestStoredRoundsReadAsBefore: rounds that the node stored as the protocol type (as it did
// before the store had records) read back through the store's record. It checks that today's
// protocol type still matches the version-1 encoding frozen in store/migrate_test.go; when they
// diverge on purpose, this test goes and that one stays the guard of stored datadirs. (The
// report half stays with the RPC adapter's reportOf, in node/.)
func TestStoredRoundsReadAsBefore(t *testing.T) {
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var r announce.Round
	testfill.Fill(t, reflect.ValueOf(&r))
	if err := st.Put(store.RoundKey("r"), &r); err != nil {
		t.Fatal(err)
	}
	var rrec store.RoundRecord
	if err := st.Get(store.RoundKey("r"), &rrec); err != nil || !reflect.DeepEqual(roundOf(&rrec), r) {
		t.Errorf("round stored as announce.Round reads as %+v, %v; want %+v", roundOf(&rrec), err, r)
	}
}
