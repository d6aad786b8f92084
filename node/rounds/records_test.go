package rounds

import (
	"reflect"
	"testing"

	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/store"
)

// fill sets every field reachable from v (a pointer) to a non-zero value, so that a conversion
// that drops a field fails a round trip.
func fill(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(t, v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(t, v.Field(i))
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint8, reflect.Uint64:
		v.SetUint(4)
	case reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < s.Len(); i++ {
			fill(t, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k)
		fill(t, e)
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		t.Fatalf("fill: no value for a %s", v.Type())
	}
}

func TestRoundRecordConversion(t *testing.T) {
	var r announce.Round
	fill(t, reflect.ValueOf(&r))
	if got := roundOf(roundRecord(&r)); !reflect.DeepEqual(got, r) {
		t.Errorf("roundOf(roundRecord(%+v)) = %+v, want it unchanged", r, got)
	}
	var rec store.RoundRecord
	fill(t, reflect.ValueOf(&rec))
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
	fill(t, reflect.ValueOf(&r))
	if err := st.Put(store.RoundKey("r"), &r); err != nil {
		t.Fatal(err)
	}
	var rrec store.RoundRecord
	if err := st.Get(store.RoundKey("r"), &rrec); err != nil || !reflect.DeepEqual(roundOf(&rrec), r) {
		t.Errorf("round stored as announce.Round reads as %+v, %v; want %+v", roundOf(&rrec), err, r)
	}
}
