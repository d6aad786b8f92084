package rounds

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/califusion/califusion/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeRewards is a coordinator's record of what it paid, as the test scripts it (a lying
// coordinator's too).
type fakeRewards struct {
	mu sync.Mutex
	rw map[string]Reward // by trainer peer ID
}

func (f *fakeRewards) RewardFor(round string, trainer peer.ID) (Reward, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rw, ok := f.rw[trainer.String()]
	return rw, ok
}

func (f *fakeRewards) set(trainer peer.ID, rw Reward) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rw[trainer.String()] = rw
}

// fakeLedger gives the trainer its ledger client: the fake ledger, seen from the trainer's
// account (ledgertest's Principal("payer") is the trainer here).
type fakeLedger struct{ f *ledgertest.Fake }

func (l fakeLedger) Client() (ledger.Ledger, error) { return l.f, nil }

// TestReportCarriesVerifiedReward: the coordinator tells a trainer its reward in the report; the
// trainer shows it verified only when the named block pays its own account exactly that amount
// from the named payer with the round's reward memo. A coordinator that lies about the amount,
// the block, the memo or the payer gets verified=false, a warning that says what did not hold,
// and a logged warning.
func TestReportCarriesVerifiedReward(t *testing.T) {
	c, tr, _, hosts := reportNet(t)
	rewards := &fakeRewards{rw: map[string]Reward{}}
	c.s.deps.Rewards = rewards
	led := ledgertest.NewFake(0)
	tr.s.deps.Ledger = fakeLedger{led}
	var logs bytes.Buffer
	tr.s.log = slog.New(slog.NewTextHandler(&logs, nil))

	_, model, round := roundOn(t, c, OpenParams{MinUpdates: 1, Deadline: "10m", Rule: "fedavg"})
	base, err := c.catalog.Get(model)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := c.models.Plaintext(model)
	tr.catalog.addSigned(t, base.Signed)
	tr.models.put(model, plain)
	c.grants.grant(model, hosts[1].ID())
	data := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(data, []byte("0,0,0,1,0\n1,0,0,0,1\n0,1,0,0,2\n0,0,1,0,0\n"), 0o600)
	res, err := tr.s.Train(t.Context(), TrainParams{RoundID: round, Data: data, Hook: "builtin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.s.Submit(t.Context(), round, res.UpdateID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if r, err := c.s.Get(round); err != nil || r.State != announce.RoundDone {
			return fmt.Errorf("coordinator's round = %+v, %v; want done", r, err)
		}
		return nil
	})
	// No reward paid yet: the report has none.
	rep, err := tr.s.Report(t.Context(), round)
	if err != nil || rep.Reward != nil {
		t.Fatalf("Report before any reward = %+v, %v; want no reward", rep, err)
	}

	trainer := hosts[1].ID()
	me := icp.Account{Owner: led.Principal()}
	payer := ledgertest.Principal("coordinator")
	from := icp.Account{Owner: payer}
	memo := updates.RewardMemo(round, trainer)
	paid := led.Add(from, me, 1000, memo, 1)
	toOther := led.Add(from, icp.Account{Owner: ledgertest.Principal("someone else")}, 1000, memo, 2)
	otherRound := led.Add(from, me, 1000, updates.RewardMemo(strings.Repeat("9", 32), trainer), 3)
	byOther := led.Add(icp.Account{Owner: ledgertest.Principal("another payer")}, me, 1000, memo, 4)

	rewards.set(trainer, Reward{Amount: "1000", Block: paid, Payer: payer.Encode()})
	rep, err = tr.s.Report(t.Context(), round)
	if err != nil {
		t.Fatal(err)
	}
	if rw := rep.Reward; rw == nil || !rw.Verified || rw.Amount != "1000" || rw.Block != paid || rw.AmountTokens != "0.00001 TST" || rw.Warning != "" {
		t.Fatalf("honest reward = %+v, want 1000 (0.00001 TST) in block %d, verified", rep.Reward, paid)
	}

	for name, c := range map[string]struct {
		rw   Reward
		want string
	}{
		"more than paid":   {Reward{Amount: "2000", Block: paid, Payer: payer.Encode()}, "pays less than the 2000"},
		"less than paid":   {Reward{Amount: "500", Block: paid, Payer: payer.Encode()}, "pays 1000 base units, not 500"},
		"another's block":  {Reward{Amount: "1000", Block: toOther, Payer: payer.Encode()}, "another account than this node's"},
		"another memo":     {Reward{Amount: "1000", Block: otherRound, Payer: payer.Encode()}, "another memo"},
		"another payer":    {Reward{Amount: "1000", Block: byOther, Payer: payer.Encode()}, "was not paid from"},
		"no such block":    {Reward{Amount: "1000", Block: 99, Payer: payer.Encode()}, "block 99"},
		"payer not parsed": {Reward{Amount: "1000", Block: paid, Payer: "aaaaa-aa-zz"}, "not a principal"},
	} {
		rewards.set(trainer, c.rw)
		logs.Reset()
		rep, err := tr.s.Report(t.Context(), round)
		if err != nil {
			t.Fatalf("%s: Report = %v", name, err)
		}
		rw := rep.Reward
		if rw == nil || rw.Verified || !strings.Contains(rw.Warning, c.want) || rw.Amount != c.rw.Amount || rw.Block != c.rw.Block {
			t.Errorf("%s: reward = %+v, want the claim shown unverified with a warning containing %q", name, rw, c.want)
		}
		if !strings.Contains(logs.String(), "reward not verified") {
			t.Errorf("%s: log = %q, want a warning", name, logs.String())
		}
	}

	tr.s.deps.Ledger = nil
	rewards.set(trainer, Reward{Amount: "1000", Block: paid, Payer: payer.Encode()})
	if rep, err := tr.s.Report(t.Context(), round); err != nil || rep.Reward == nil || rep.Reward.Verified || !strings.Contains(rep.Reward.Warning, "no ledger") {
		t.Errorf("reward without a ledger = %+v, %v; want it unverified, saying so", rep.Reward, err)
	}
}

// A secure round's coordinator tells each contributor, and only a contributor, the round's
// outcome and the reward it paid it.
func TestSecureRoundReportTellsContributorsTheirReward(t *testing.T) {
	c := newNode(t, config.RoleCoordinator)
	rewards := &fakeRewards{rw: map[string]Reward{}}
	c.s.deps.Rewards = rewards
	contributor, stranger := contenttest.NewSigner(t).ID, contenttest.NewSigner(t).ID
	id := "00112233445566778899aabbccddeeff"
	r := announce.Round{ID: id, Model: make([]byte, 32), Coordinator: c.self.String(), MinUpdates: 3, Deadline: time.Now().Add(time.Hour).UnixMilli(),
		Rule: "fedavg", State: announce.RoundDone, NewModel: make([]byte, 32), OpenedAt: 1, Seq: 3, Secure: true}
	if err := c.s.deps.Store.Put(store.RoundKey(id), roundRecord(&r)); err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	if err := c.s.deps.Store.Put(store.ReportKey(id), &store.ReportRecord{RoundID: id, BaseModel: strings.Repeat("00", 32), NewModel: strings.Repeat("00", 32),
		AggregateSHA256: sum, Rule: "fedavg", Secure: true, Contributors: []string{contributor.String()}, Metrics: map[string]float64{"accuracy": 0.9}}); err != nil {
		t.Fatal(err)
	}
	rewards.set(contributor, Reward{Amount: "1000", Block: 7, Payer: ledgertest.Principal("coordinator").Encode()})
	got := c.s.handleReport(t.Context(), contributor, &updates.Query{Round: id})
	if got.Report == nil || !got.Report.Secure || got.Report.Reward == nil || got.Report.Reward.Block != 7 || got.Report.Metrics["accuracy"] != 0.9 || got.Report.Verdict.Trainer != contributor.String() {
		t.Fatalf("contributor's report = %+v (receipt %+v), want the secure outcome with its reward", got.Report, got)
	}
	if refused := c.s.handleReport(t.Context(), stranger, &updates.Query{Round: id}); refused.Report != nil || refused.Code != apierr.Role {
		t.Fatalf("a non-contributor's query = %+v, want refused (role)", refused)
	}
}
