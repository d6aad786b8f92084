package node

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/califusion/califusion/node/internal/testfill"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/store"
)

// nonZero fails on any field reachable from v that is its type's zero value.
func nonZero(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			t.Errorf("%s is nil", path)
			return
		}
		nonZero(t, v.Elem(), path)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			nonZero(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			t.Errorf("%s is empty", path)
		}
		if v.Kind() == reflect.Slice {
			for i := 0; i < v.Len(); i++ {
				nonZero(t, v.Index(i), path)
			}
		}
	default:
		if v.IsZero() {
			t.Errorf("%s is zero", path)
		}
	}
}

// TestReportOf: the API's report carries every field of the stored record, and the same JSON
// shape: an empty list stays [], a missing one null.
func TestReportOf(t *testing.T) {
	var full store.ReportRecord
	testfill.Fill(t, reflect.ValueOf(&full))
	rep := reportOf(&full)
	nonZero(t, reflect.ValueOf(rep), "report")
	empty := reportOf(&store.ReportRecord{Participants: []store.ParticipantRecord{}, Anchors: []string{}, Metrics: map[string]float64{}, Timings: map[string]float64{}})
	if b, _ := json.Marshal(empty); !strings.Contains(string(b), `"participants":[]`) || !strings.Contains(string(b), `"anchors":[]`) {
		t.Errorf("a report with empty lists reads as %s, want [] for them", b)
	}
	if b, _ := json.Marshal(reportOf(&store.ReportRecord{})); !strings.Contains(string(b), `"participants":null`) {
		t.Errorf("a report without lists reads as %s, want null for them", b)
	}
}

// TestStoredReportsReadAsBefore: reports that the node stored as the admin API's type (as it did
// before the store had records) read back through the store's record. It checks that today's API
// type still matches the version-1 encoding frozen in store/migrate_test.go; when they diverge on
// purpose, this test goes and that one stays the guard of stored datadirs. (Rounds: the same
// test in node/rounds.)
func TestStoredReportsReadAsBefore(t *testing.T) {
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var rep adminrpc.RoundReport
	testfill.Fill(t, reflect.ValueOf(&rep))
	if err := st.Put(store.ReportKey("r"), &rep); err != nil {
		t.Fatal(err)
	}
	var prec store.ReportRecord
	if err := st.Get(store.ReportKey("r"), &prec); err != nil || !reflect.DeepEqual(reportOf(&prec), rep) {
		t.Errorf("report stored as adminrpc.RoundReport reads as %+v, %v; want %+v", reportOf(&prec), err, rep)
	}
}
