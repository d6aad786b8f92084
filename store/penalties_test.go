package store

import (
	"testing"
	"time"
)

func TestPenaltyGrowsPersistsAndDecays(t *testing.T) {
	s, dir := openTemp(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if _, active, err := s.PenaltyOf("peerA", now); err != nil || active {
		t.Fatalf("PenaltyOf(unknown) = active %v, %v; want none", active, err)
	}
	for i, want := range []time.Duration{PenaltyBase, 2 * PenaltyBase, 4 * PenaltyBase} {
		p, err := s.Penalise("peerA", "bad chunk", now)
		if err != nil || p.Offences != i+1 || p.Until.Sub(now) != want {
			t.Fatalf("Penalise #%d = %+v, %v; want %d offences, %v", i+1, p, err, i+1, want)
		}
	}
	for range 20 {
		s.Penalise("peerA", "bad chunk", now)
	}
	p, active, err := s.PenaltyOf("peerA", now.Add(PenaltyMax-time.Minute))
	if err != nil || !active || p.Until.Sub(now) != PenaltyMax {
		t.Errorf("after 23 offences PenaltyOf = %+v active %v, %v; want active until %v", p, active, err, PenaltyMax)
	}
	if _, active, _ := s.PenaltyOf("peerA", now.Add(PenaltyMax+time.Minute)); active {
		t.Error("penalty active after PenaltyMax")
	}
	// It survives a restart.
	s.Close()
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, active, err := s2.PenaltyOf("peerA", now.Add(time.Minute)); err != nil || !active {
		t.Errorf("after reopening, PenaltyOf = active %v, %v; want active", active, err)
	}
	// Forgotten after PenaltyForget: the record goes, and a new offence counts from one.
	later := now.Add(PenaltyForget + time.Hour)
	if _, active, err := s2.PenaltyOf("peerA", later); err != nil || active {
		t.Errorf("PenaltyOf after PenaltyForget = active %v, %v; want forgotten", active, err)
	}
	if ok, _ := s2.Has(PenaltyKey("peerA")); ok {
		t.Error("a forgotten penalty is still stored")
	}
	if p, _ := s2.Penalise("peerA", "again", later); p.Offences != 1 || p.Until.Sub(later) != PenaltyBase {
		t.Errorf("first offence after forgetting = %+v, want 1 offence, %v", p, PenaltyBase)
	}
}
