package store

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// The types rounds and reports were stored as before the store had its own records, frozen here
// as they were declared then (announce.Round and adminrpc.RoundReport/Participant): the tags and
// field types are the stored encoding, so these must not change.
type (
	v1Round struct {
		ID          string  `cbor:"1,keyasint"`
		Model       []byte  `cbor:"2,keyasint"`
		Coordinator string  `cbor:"3,keyasint"`
		MinUpdates  int     `cbor:"4,keyasint"`
		Deadline    int64   `cbor:"5,keyasint"`
		Rule        string  `cbor:"6,keyasint"`
		ClipNorm    float64 `cbor:"7,keyasint,omitempty"`
		ClipMode    string  `cbor:"8,keyasint,omitempty"`
		State       string  `cbor:"9,keyasint"`
		Updates     int     `cbor:"10,keyasint,omitempty"`
		Rejected    int     `cbor:"11,keyasint,omitempty"`
		NewModel    []byte  `cbor:"12,keyasint,omitempty"`
		Error       string  `cbor:"13,keyasint,omitempty"`
		Seq         uint64  `cbor:"14,keyasint"`
		OpenedAt    int64   `cbor:"15,keyasint"`
		MaxSamples  uint64  `cbor:"16,keyasint,omitempty"`
	}
	v1Participant struct {
		PeerID   string             `json:"peer_id"`
		Samples  uint64             `json:"samples"`
		Norm     float64            `json:"norm"`
		Accepted bool               `json:"accepted"`
		Reason   string             `json:"reason,omitempty"`
		Clipped  bool               `json:"clipped,omitempty"`
		SHA256   string             `json:"sha256"`
		Metrics  map[string]float64 `json:"metrics,omitempty"`
	}
	v1Report struct {
		RoundID         string             `json:"round_id"`
		BaseModel       string             `json:"base_model"`
		NewModel        string             `json:"new_model"`
		Rule            string             `json:"rule"`
		Participants    []v1Participant    `json:"participants"`
		AggregateSHA256 string             `json:"aggregate_sha256"`
		Anchors         []string           `json:"anchors"`
		Metrics         map[string]float64 `json:"metrics"`
		Timings         map[string]float64 `json:"timings"`
	}
)

// rawGet returns the bytes stored at key.
func rawGet(t *testing.T, s *Store, key Key) []byte {
	t.Helper()
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return out
}

func version(t *testing.T, s *Store) uint64 {
	t.Helper()
	var v uint64
	if err := s.Get(schemaKey, &v); err != nil {
		t.Fatalf("Get(%s) = %v", schemaKey, err)
	}
	return v
}

// v1Samples are rounds and reports as version-1 code wrote them, with the record each must read
// as: every field set, and every optional field left out.
func v1Samples() (rounds []v1Round, wantRounds []RoundRecord, reports []v1Report, wantReports []ReportRecord) {
	id := strings.Repeat("ab", 16)
	rounds = []v1Round{
		{ID: id, Model: bytes.Repeat([]byte{1}, 32), Coordinator: "12D3KooWA", MinUpdates: 2, Deadline: 1700000000000,
			Rule: "trimmed_mean", ClipNorm: 1.5, ClipMode: "scale", State: "done", Updates: 3, Rejected: 1,
			NewModel: bytes.Repeat([]byte{2}, 32), Error: "x", Seq: 9, OpenedAt: 1690000000000, MaxSamples: 500},
		{ID: strings.Repeat("cd", 16), Model: bytes.Repeat([]byte{3}, 32), Coordinator: "12D3KooWB", MinUpdates: 1,
			Deadline: 1, Rule: "fedavg", State: "open", Seq: 1, OpenedAt: 1},
	}
	for _, r := range rounds {
		wantRounds = append(wantRounds, RoundRecord{
			ID: r.ID, Model: r.Model, Coordinator: r.Coordinator, MinUpdates: r.MinUpdates, Deadline: r.Deadline,
			Rule: r.Rule, ClipNorm: r.ClipNorm, ClipMode: r.ClipMode, State: r.State, Updates: r.Updates, Rejected: r.Rejected,
			NewModel: r.NewModel, Error: r.Error, Seq: r.Seq, OpenedAt: r.OpenedAt, MaxSamples: r.MaxSamples,
		})
	}
	reports = []v1Report{
		{RoundID: id, BaseModel: "aa", NewModel: "bb", Rule: "median", AggregateSHA256: "cc",
			Participants: []v1Participant{
				{PeerID: "12D3KooWA", Samples: 10, Norm: 0.5, Accepted: true, Clipped: true, SHA256: "dd", Metrics: map[string]float64{"train_accuracy": 0.9}},
				{PeerID: "12D3KooWB", Samples: 5, Norm: 9, Reason: "norm above the bound", SHA256: "ee"},
			},
			Anchors: []string{"anchor-1"}, Metrics: map[string]float64{"samples": 15}, Timings: map[string]float64{"fold": 0.25}},
		{RoundID: strings.Repeat("cd", 16), Participants: []v1Participant{}, Anchors: []string{}, Metrics: map[string]float64{}, Timings: map[string]float64{}},
	}
	for _, r := range reports {
		rec := ReportRecord{RoundID: r.RoundID, BaseModel: r.BaseModel, NewModel: r.NewModel, Rule: r.Rule,
			AggregateSHA256: r.AggregateSHA256, Anchors: r.Anchors, Metrics: r.Metrics, Timings: r.Timings,
			Participants: []ParticipantRecord{}}
		for _, p := range r.Participants {
			rec.Participants = append(rec.Participants, ParticipantRecord(p))
		}
		wantReports = append(wantReports, rec)
	}
	return rounds, wantRounds, reports, wantReports
}

// TestOpenVersion1Datadir opens a datadir written the way version-1 code wrote it, rounds and
// reports as the protocol types, and reads them as the store's records, byte for byte.
func TestOpenVersion1Datadir(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rounds, wantRounds, reports, wantReports := v1Samples()
	old := map[string][]byte{}
	err = s.Update(func(tx *Tx) error {
		for i := range rounds {
			if err := tx.Put(RoundKey(rounds[i].ID), &rounds[i]); err != nil {
				return err
			}
		}
		for i := range reports {
			if err := tx.Put(ReportKey(reports[i].RoundID), &reports[i]); err != nil {
				return err
			}
		}
		return tx.Put(PeerKey("12D3KooWA"), &PeerRecord{Addrs: []string{"/ip4/127.0.0.1/tcp/1"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{RoundKey(rounds[0].ID), RoundKey(rounds[1].ID), ReportKey(reports[0].RoundID), ReportKey(reports[1].RoundID)} {
		old[string(k)] = rawGet(t, s, k)
	}
	s.Close()

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open(version-1 datadir) = %v", err)
	}
	defer s.Close()
	if v := version(t, s); v != SchemaVersion {
		t.Errorf("schema version after Open = %d, want %d", v, SchemaVersion)
	}
	for i, want := range wantRounds {
		var got RoundRecord
		if err := s.Get(RoundKey(want.ID), &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Get(round %d) = %+v, %v; want %+v", i, got, err, want)
		}
		if b, _ := encMode.Marshal(&want); !bytes.Equal(b, old[string(RoundKey(want.ID))]) {
			t.Errorf("RoundRecord %d encodes as %x, version 1 stored %x", i, b, old[string(RoundKey(want.ID))])
		}
	}
	for i, want := range wantReports {
		var got ReportRecord
		if err := s.Get(ReportKey(want.RoundID), &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Get(report %d) = %+v, %v; want %+v", i, got, err, want)
		}
		if b, _ := encMode.Marshal(&want); !bytes.Equal(b, old[string(ReportKey(want.RoundID))]) {
			t.Errorf("ReportRecord %d encodes as %x, version 1 stored %x", i, b, old[string(ReportKey(want.RoundID))])
		}
	}
	var pr PeerRecord
	if err := s.Get(PeerKey("12D3KooWA"), &pr); err != nil || len(pr.Addrs) != 1 {
		t.Errorf("Get(peer) = %+v, %v after reopening", pr, err)
	}
}

// TestOpenStampsVersion: a new store, and one that lost its version, are stamped SchemaVersion
// and keep their records.
func TestOpenStampsVersion(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := version(t, s); v != SchemaVersion {
		t.Errorf("new store's version = %d, want %d", v, SchemaVersion)
	}
	if b, want := rawGet(t, s, schemaKey), []byte{0x01}; !bytes.Equal(b, want) {
		t.Errorf("stored version = %x, want %x", b, want)
	}
	if err := s.Put(PeerKey("a"), &PeerRecord{Addrs: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(schemaKey); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatalf("Open(store without a version) = %v", err)
	}
	defer s.Close()
	if v := version(t, s); v != SchemaVersion {
		t.Errorf("version after Open = %d, want %d", v, SchemaVersion)
	}
	var pr PeerRecord
	if err := s.Get(PeerKey("a"), &pr); err != nil || !reflect.DeepEqual(pr.Addrs, []string{"x"}) {
		t.Errorf("Get(peer) = %+v, %v; want the record kept", pr, err)
	}
}

// TestMigrationSteps runs a table of steps: in order, each with its version, a failing one
// leaving the store at the version before it, a gap and a newer store refused.
func TestMigrationSteps(t *testing.T) {
	s, _ := openTemp(t)
	var ran []uint64
	mark := func(v uint64) migration {
		return func(tx *Tx) error {
			var at uint64
			if err := tx.Get(schemaKey, &at); err != nil || at != v {
				t.Errorf("step %d runs on a store at version %d (%v)", v, at, err)
			}
			ran = append(ran, v)
			return tx.Put(MetaKey("step"), v)
		}
	}
	steps := map[uint64]migration{1: mark(1), 2: mark(2)}
	if err := s.migrate(steps, 3); err != nil {
		t.Fatalf("migrate(1 → 3) = %v", err)
	}
	if v := version(t, s); v != 3 || !reflect.DeepEqual(ran, []uint64{1, 2}) {
		t.Errorf("migrate(1 → 3): version %d, steps run %v; want 3, [1 2]", v, ran)
	}

	steps[3] = func(tx *Tx) error {
		if err := tx.Put(MetaKey("half"), uint64(1)); err != nil {
			return err
		}
		return errors.New("boom")
	}
	if err := s.migrate(steps, 4); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("migrate with a failing step = %v, want its error", err)
	}
	if has, _ := s.Has(MetaKey("half")); has || version(t, s) != 3 {
		t.Errorf("after a failing step: version %d, its write kept %v; want 3, none", version(t, s), has)
	}

	if err := s.migrate(map[uint64]migration{}, 4); err == nil {
		t.Errorf("migrate(3 → 4) with no step from 3 = nil, want an error")
	}
	if err := s.migrate(migrations, 2); err == nil || !strings.Contains(err.Error(), "version 3 is not supported") {
		t.Errorf("migrate of a version-3 store to 2 = %v, want a refusal", err)
	}
	for v := uint64(0); v < SchemaVersion; v++ {
		if migrations[v] == nil {
			t.Errorf("no migration from version %d to %d", v, v+1)
		}
	}
}
