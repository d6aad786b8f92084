package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestSchemaRoundTrips(t *testing.T) {
	s, _ := openTemp(t)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		key  Key
		in   any
		out  any
		want any
	}{
		{PeerKey("12D3KooWA"), &PeerRecord{Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, LastSeen: now}, &PeerRecord{}, &PeerRecord{Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, LastSeen: now}},
		{PresenceKey("12D3KooWB"), &Presence{Roles: []string{"trainer"}, Version: "v", SentAt: now, Received: now}, &Presence{}, &Presence{Roles: []string{"trainer"}, Version: "v", SentAt: now, Received: now}},
		{MetaKey("x"), uint64(7), new(uint64), func() *uint64 { v := uint64(7); return &v }()},
	}
	for _, tt := range tests {
		if err := s.Put(tt.key, tt.in); err != nil {
			t.Fatalf("Put(%s) = %v", tt.key, err)
		}
		if err := s.Get(tt.key, tt.out); err != nil {
			t.Fatalf("Get(%s) = %v", tt.key, err)
		}
		// Compare encodings: decoded times carry the local zone, which DeepEqual would count.
		gotB, _ := encMode.Marshal(tt.out)
		wantB, _ := encMode.Marshal(tt.want)
		if string(gotB) != string(wantB) {
			t.Errorf("Get(%s) = %+v, want %+v", tt.key, tt.out, tt.want)
		}
	}
	var pr PeerRecord
	if err := s.Get(PeerKey("missing"), &pr); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
}

func TestScanIsPrefixBound(t *testing.T) {
	s, _ := openTemp(t)
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Put(PeerKey(id), &PeerRecord{Addrs: []string{id}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(PresenceKey("z"), &Presence{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.Scan(PeerPrefix(), func(k Key, decode func(any) error) error {
		var pr PeerRecord
		if err := decode(&pr); err != nil {
			return err
		}
		got = append(got, pr.Addrs[0])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Scan(peer/) = %v, want %v", got, want)
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	s, _ := openTemp(t)
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.Put(PeerKey("a"), &PeerRecord{}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	var pr PeerRecord
	if err := s.Get(PeerKey("a"), &pr); !errors.Is(err, ErrNotFound) {
		t.Errorf("after failed Update, Get = %v, want ErrNotFound", err)
	}
}

func TestReopenKeepsStateAndChecksSchema(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(PeerKey("a"), &PeerRecord{Addrs: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(MetaKey("schema"), uint64(99)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatalf("Open with schema 99 = nil error, want a version error")
	}
}

func TestGCLoopStartsAndStops(t *testing.T) {
	s, err := Open(t.TempDir(), Options{GCInterval: time.Millisecond, GCDiscardRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	for i := 0; i < 100; i++ {
		if err := s.Put(PeerKey("a"), &PeerRecord{Addrs: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
}

func TestBitmap(t *testing.T) {
	b := NewBitmap(10)
	if len(b) != 2 {
		t.Fatalf("NewBitmap(10) has %d bytes, want 2", len(b))
	}
	for _, i := range []uint64{0, 7, 9, 9, 200} {
		b.Set(i)
	}
	for i := uint64(0); i < 10; i++ {
		want := i == 0 || i == 7 || i == 9
		if b.Has(i) != want {
			t.Errorf("Has(%d) = %v, want %v", i, b.Has(i), want)
		}
	}
	if got := b.Count(); got != 3 {
		t.Errorf("Count() = %d, want 3", got)
	}
}

// TestPutSyncIsDurable: PutSync syncs the store (Syncs counts it) and, without a Close, the
// value is in the store's files: a copy of the folder taken while the store is open (as a
// crash would leave it) opens with the value. A power cut itself cannot be simulated here; the
// sync is badger's DB.Sync (write-ahead log and value log).
func TestPutSyncIsDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutSync(PeerKey("pending"), &PeerRecord{Addrs: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if got := s.Syncs(); got != 1 {
		t.Errorf("Syncs after one PutSync = %d, want 1", got)
	}
	crashed := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Open(crashed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rec PeerRecord
	if err := c.Get(PeerKey("pending"), &rec); err != nil || len(rec.Addrs) != 1 {
		t.Errorf("Get from the crash copy = %+v, %v; want the record", rec, err)
	}
}
