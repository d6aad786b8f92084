package updates

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/peer"
)

func rewardedReport() *Report {
	r := sampleReport()
	r.Reward = &Reward{Amount: "1000000", Block: 42, Payer: "rrkah-fqaaa-aaaaa-aaaaq-cai"}
	return r
}

// TestReportReward: a report's reward survives the wire; Check refuses a malformed one (amount
// not a positive whole number or too long, payer not a principal) and Trim drops it.
func TestReportReward(t *testing.T) {
	b, err := wire.Marshal(&Receipt{Report: rewardedReport()})
	if err != nil {
		t.Fatal(err)
	}
	var got Receipt
	if err := wire.Unmarshal(b, &got); err != nil || got.Report.Check() != nil {
		t.Fatalf("decode = %v, %v", err, got.Report.Check())
	}
	if !reflect.DeepEqual(got.Report.Reward, rewardedReport().Reward) {
		t.Errorf("reward = %+v, want %+v", got.Report.Reward, rewardedReport().Reward)
	}
	if err := sampleReport().Check(); err != nil {
		t.Errorf("a report without a reward: %v", err)
	}
	for name, rw := range map[string]Reward{
		"zero amount":      {Amount: "0", Payer: "aaaaa-aa"},
		"empty amount":     {Amount: "", Payer: "aaaaa-aa"},
		"negative amount":  {Amount: "-5", Payer: "aaaaa-aa"},
		"leading zero":     {Amount: "01", Payer: "aaaaa-aa"},
		"decimal amount":   {Amount: "0.01", Payer: "aaaaa-aa"},
		"41 digits":        {Amount: "1" + strings.Repeat("0", 40), Payer: "aaaaa-aa"},
		"no payer":         {Amount: "5"},
		"payer with space": {Amount: "5", Payer: "aaaaa aa"},
		"long payer":       {Amount: "5", Payer: strings.Repeat("a", 65)},
	} {
		r := sampleReport()
		r.Reward = &rw
		if err := r.Check(); !errors.Is(err, ErrReport) {
			t.Errorf("%s: Check = %v, want ErrReport", name, err)
		}
		r.Trim()
		if r.Reward != nil || r.Check() != nil {
			t.Errorf("%s: Trim kept the reward %+v", name, r.Reward)
		}
	}
}

// TestRewardMemo: the memo binds the round and the trainer.
func TestRewardMemo(t *testing.T) {
	p1, p2 := peer.ID("trainer-1"), peer.ID("trainer-2")
	want := sha256.Sum256([]byte("califusion/reward/v1" + "r1" + string(p1)))
	if got := RewardMemo("r1", p1); !bytes.Equal(got, want[:]) {
		t.Errorf("RewardMemo(r1, p1) = %x, want %x", got, want)
	}
	if bytes.Equal(RewardMemo("r1", p1), RewardMemo("r1", p2)) || bytes.Equal(RewardMemo("r1", p1), RewardMemo("r2", p1)) {
		t.Error("RewardMemo does not tell rounds or trainers apart")
	}
}

// A secure round's report carries no update hash, samples or norm in its verdict (the
// coordinator never saw the update); a plain one must carry the hash.
func TestSecureReportVerdict(t *testing.T) {
	r := rewardedReport()
	r.Secure, r.Verdict.SHA256, r.Verdict.Samples, r.Verdict.Norm = true, nil, 0, 0
	if err := r.Check(); err != nil {
		t.Fatalf("secure report: %v", err)
	}
	for name, mutate := range map[string]func(*Report){
		"hash":    func(r *Report) { r.Verdict.SHA256 = make([]byte, 32) },
		"samples": func(r *Report) { r.Verdict.Samples = 10 },
		"norm":    func(r *Report) { r.Verdict.Norm = 1 },
		"plain":   func(r *Report) { r.Secure = false },
	} {
		bad := *r
		mutate(&bad)
		if err := bad.Check(); !errors.Is(err, ErrReport) {
			t.Errorf("secure report with %s: Check = %v, want ErrReport", name, err)
		}
	}
}
