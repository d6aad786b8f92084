package storage

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
)

func names(ms []Model) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		out[m.Name] = m.Reason
	}
	return out
}

// TestGCPolicy: gc removes exactly the held versions superseded by a descendant held complete
// here (a child or a later one), oldest first, and keeps the latest of each lineage, a version
// superseded only by a partial one, this node's published versions, pinned ones, the base of an
// open round this node coordinates and one being fetched; it stops providing what it removes.
func TestGCPolicy(t *testing.T) {
	f := newFixture(t)
	// a1 → a2 → a3: a2 complete supersedes a1; a3 is partial, so a2 stays the latest.
	a1 := f.version("a1", nil, f.other, complete)
	a2 := f.version("a2", a1, f.other, complete)
	f.version("a3", a2, f.other, partial)
	// g1 → g2 (not held) → g3 complete: a grandchild supersedes too.
	g1 := f.version("g1", nil, f.other, partial)
	g2 := f.version("g2", g1, f.other, none)
	f.version("g3", g2, f.other, complete)
	// Superseded but protected.
	p1 := f.version("p1", nil, f.self, complete) // published here
	f.version("p2", p1, f.self, complete)
	n1 := f.version("n1", nil, f.other, complete) // pinned
	f.version("n2", n1, f.other, complete)
	r1 := f.version("r1", nil, f.other, complete) // an open round's base
	f.version("r2", r1, f.other, complete)
	j1 := f.version("j1", nil, f.other, partial) // being fetched
	f.version("j2", j1, f.other, complete)
	// f1 held, its child not: the latest held.
	f1 := f.version("f1", nil, f.other, complete)
	f.version("f2", f1, f.other, none)

	s := f.service(0)
	if err := s.Pin(n1.ID, true); err != nil {
		t.Fatal(err)
	}
	f.rounds = fakeRounds{r1.ID}
	f.jobs[hex.EncodeToString(j1.ID[:])] = "job1"

	res, err := s.GC()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 2 || res.Removed[0].ID != a1.ID || res.Removed[1].ID != g1.ID {
		t.Fatalf("GC removed %v, want a1 then g1 (oldest first)", names(res.Removed))
	}
	if res.Freed != 400+200 {
		t.Errorf("GC freed %d bytes, want 600 (a1 complete, g1 partial)", res.Freed)
	}
	wantKept := map[string]string{
		"a2": KeepLatest, "a3": KeepLatest, "g3": KeepLatest, "p1": KeepPublished, "p2": KeepPublished,
		"n1": KeepPinned, "n2": KeepLatest, "r1": KeepRound, "r2": KeepLatest, "j1": KeepFetching, "j2": KeepLatest, "f1": KeepLatest,
	}
	got := names(res.Kept)
	for name, why := range wantKept {
		if got[name] != why {
			t.Errorf("GC kept %s for %q, want %q", name, got[name], why)
		}
	}
	if len(got) != len(wantKept) {
		t.Errorf("GC kept %v, want exactly %v", got, wantKept)
	}
	for _, id := range []content.ModelID{a1.ID, g1.ID} {
		if !f.provider.stoppedFor(id) {
			t.Errorf("GC did not stop providing %x", id[:2])
		}
	}
	if _, err := f.catalog.Get(a1.ID); err != nil {
		t.Errorf("GC dropped a1's manifest too: %v", err)
	}
	if again, err := s.GC(); err != nil || len(again.Removed) != 0 {
		t.Errorf("a second GC = %v, %v; want nothing removed", names(again.Removed), err)
	}

	// Unpinned, ended round, fetch done: gc removes them now; published versions stay.
	s.Pin(n1.ID, false)
	f.rounds = nil
	delete(f.jobs, hex.EncodeToString(j1.ID[:]))
	res, err = s.GC()
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Removed); len(got) != 3 || got["n1"] != "" || got["r1"] != "" || got["j1"] != "" {
		t.Errorf("GC after the protections ended removed %v, want n1, r1, j1", got)
	}
	if names(res.Kept)["p1"] != KeepPublished {
		t.Errorf("GC kept %v, want p1 still kept as published", names(res.Kept))
	}
}

// TestEnforceCap: over the cap, superseded versions go oldest first until the blobs fit; with
// only latest and published versions left over the cap nothing more goes and a warning names
// them; under the cap or without one nothing is removed.
func TestEnforceCap(t *testing.T) {
	f := newFixture(t)
	x1 := f.version("x1", nil, f.other, complete)
	x2 := f.version("x2", x1, f.other, complete)
	x3 := f.version("x3", x2, f.other, complete)
	f.version("mine", nil, f.self, complete)

	if res, err := f.service(0).EnforceCap(); err != nil || len(res.Removed) != 0 {
		t.Fatalf("EnforceCap without a cap = %v, %v; want nothing removed", names(res.Removed), err)
	}
	if res, err := f.service(1600).EnforceCap(); err != nil || len(res.Removed) != 0 {
		t.Fatalf("EnforceCap at the cap = %v, %v; want nothing removed", names(res.Removed), err)
	}
	res, err := f.service(1300).EnforceCap() // 1600 used: removing x1 is enough
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].ID != x1.ID || res.Freed != 400 {
		t.Fatalf("EnforceCap(1300) removed %v (%d bytes), want only x1, the oldest", names(res.Removed), res.Freed)
	}
	if names(res.Kept)["x2"] != KeepUnderCap {
		t.Errorf("EnforceCap(1300) kept %v, want x2 kept as not needed", names(res.Kept))
	}
	if strings.Contains(f.logs(), "storage cap exceeded") {
		t.Errorf("a warning was logged though the cap was met:\n%s", f.logs())
	}
	res, err = f.service(100).EnforceCap()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0].ID != x2.ID {
		t.Fatalf("EnforceCap(100) removed %v, want x2", names(res.Removed))
	}
	if got := f.chunks.wasRemoved(); len(got) != 2 {
		t.Errorf("removed in all %d models, want 2 (never x3 or the published one)", len(got))
	}
	logs := f.logs()
	if !strings.Contains(logs, "storage cap exceeded") || !strings.Contains(logs, hex.EncodeToString(x3.ID[:8])+" x3") || !strings.Contains(logs, "mine") {
		t.Errorf("the over-cap warning does not name what would need to go:\n%s", logs)
	}
}

// TestCapCheckAfterFetch: with a cap, a completed fetch (Fetched) triggers the check that
// removes the version it superseded, without any gc call.
func TestCapCheckAfterFetch(t *testing.T) {
	f := newFixture(t)
	v1 := f.version("v1", nil, f.other, complete)
	v2 := f.version("v2", v1, f.other, partial)
	s := f.service(500)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The check at start finds v1 the latest held complete version and keeps it.
	waitFor(t, func() bool { return strings.Contains(f.logs(), "storage cap exceeded") })
	if got := f.chunks.wasRemoved(); len(got) != 0 {
		t.Fatalf("removed %x before v2 was complete", got)
	}
	f.hold(v2, complete)
	s.Fetched(v2.ID)
	waitFor(t, func() bool { return len(f.chunks.wasRemoved()) == 1 })
	if got := f.chunks.wasRemoved(); got[0] != v1.ID {
		t.Errorf("the cap check removed %x, want v1", got[0][:2])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRemove: model rm drops the chunks and stops providing, keeping the manifest unless forget;
// it refuses unknown, fetching, pinned, open-round and (without force) published models, and
// forgetting a parent.
func TestRemove(t *testing.T) {
	f := newFixture(t)
	a1 := f.version("a1", nil, f.other, complete)
	a2 := f.version("a2", a1, f.other, complete)
	mine := f.version("mine", nil, f.self, complete)
	fetching := f.version("fetching", nil, f.other, partial)
	pinned := f.version("pinned", nil, f.other, complete)
	base := f.version("base", nil, f.other, complete)
	s := f.service(0)
	f.jobs[hex.EncodeToString(fetching.ID[:])] = "job7"
	f.rounds = fakeRounds{base.ID}
	if err := s.Pin(pinned.ID, true); err != nil {
		t.Fatal(err)
	}

	refusals := []struct {
		name   string
		id     content.ModelID
		forget bool
		code   int
		says   string
	}{
		{"unknown", content.ModelID{1}, false, apierr.NotFound, "not in this node's catalog"},
		{"being fetched", fetching.ID, false, apierr.Conflict, "job7"},
		{"pinned", pinned.ID, false, apierr.Conflict, "unpin"},
		{"open round base", base.ID, false, apierr.Conflict, "open round"},
		{"published here", mine.ID, false, apierr.Conflict, "force"},
		{"forget a parent", a1.ID, true, apierr.Conflict, "parent of version"},
	}
	for _, tt := range refusals {
		_, err := s.Remove(tt.id, tt.forget, false)
		if apierr.CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("Remove(%s) = %v, want code %d saying %q", tt.name, err, tt.code, tt.says)
		}
	}
	if got := f.chunks.wasRemoved(); len(got) != 0 {
		t.Fatalf("refused removals removed %x", got)
	}

	res, err := s.Remove(a1.ID, false, false)
	if err != nil || res.Freed != 400 || res.Forgotten {
		t.Fatalf("Remove(a1) = %+v, %v; want 400 bytes freed, not forgotten", res, err)
	}
	if _, err := f.catalog.Get(a1.ID); err != nil || !f.provider.stoppedFor(a1.ID) {
		t.Errorf("after Remove(a1): manifest %v, stopped providing %v; want the manifest kept and providing stopped", err, f.provider.stoppedFor(a1.ID))
	}
	if err := s.Pin(a2.ID, true); err != nil {
		t.Fatal(err)
	}
	s.Pin(a2.ID, false)
	res, err = s.Remove(a2.ID, true, false)
	if err != nil || !res.Forgotten {
		t.Fatalf("Remove(a2, forget) = %+v, %v; want forgotten", res, err)
	}
	if _, err := f.catalog.Get(a2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a2 still in the catalog after forget: %v", err)
	}
	if _, err := s.Remove(mine.ID, false, true); err != nil {
		t.Errorf("Remove(published, force) = %v, want removed", err)
	}
	if got := f.chunks.wasRemoved(); len(got) != 3 {
		t.Errorf("removed %d models, want 3 (a1, a2, mine)", len(got))
	}
}

// TestPinAndStat: pins persist in the store; stat counts the catalog, what is held complete and
// in part, blob bytes, keys, pins, the cap and what gc would free.
func TestPinAndStat(t *testing.T) {
	f := newFixture(t)
	v1 := f.version("v1", nil, f.other, complete)
	v2 := f.version("v2", v1, f.other, complete)
	f.version("v3", v2, f.other, partial)
	f.version("other", nil, f.other, none)
	f.keys[v1.ID], f.keys[v2.ID] = true, true
	s := f.service(5000)
	if err := s.Pin(content.ModelID{9}, true); apierr.CodeOf(err) != apierr.NotFound {
		t.Errorf("Pin(unknown) = %v, want not_found", err)
	}
	if err := s.Pin(v2.ID, true); err != nil {
		t.Fatal(err)
	}
	if !s.Pinned(v2.ID) || s.Pinned(v1.ID) {
		t.Errorf("Pinned(v2), Pinned(v1) = %v, %v; want true, false", s.Pinned(v2.ID), s.Pinned(v1.ID))
	}
	var pin store.Pin
	if err := f.st.Get(store.PinKey(v2.ID), &pin); err != nil || pin.At.IsZero() {
		t.Errorf("stored pin of v2 = %+v, %v", pin, err)
	}
	st, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{Models: 4, Complete: 2, Partial: 1, BlobBytes: 1000, KeysHeld: 2, Pinned: 1, MaxBlobBytes: 5000, Reclaimable: 400}
	if st != want {
		t.Errorf("Stat() = %+v, want %+v", st, want)
	}
	if err := s.Pin(v2.ID, false); err != nil || s.Pinned(v2.ID) {
		t.Errorf("unpin: %v, pinned %v", err, s.Pinned(v2.ID))
	}
}
