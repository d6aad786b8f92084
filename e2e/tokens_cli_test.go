package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/icp/icptest"
)

// TestTokensInTheCLI: prices and payments read as tokens. A model published with --price-tokens
// 0.5 shows "0.5 ICP (50000000 base units) + fee 0.0001 ICP"; model pay states the price and fee
// before paying and its --json carries the amount as tokens beside the base units.
func TestTokensInTheCLI(t *testing.T) {
	replica := startICPLedger(t, icptest.Options{})
	c := newCluster(t)
	pub := c.NewNodes("tp", 1, "publisher", "coordinator")[0]
	tr := c.NewNodes("tt", 1, "trainer")[0]
	useReplica(t, replica.URL(), pub, tr)
	c.start(pub)
	c.start(tr, "--bootstrap", pub.P2PAddr())
	replica.Mint(principal.MustDecode(tr.Info().ICPPrincipal), 100_000_000)

	path, _ := writeRandom(t, 64<<10)
	var res adminrpc.PublishResult
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", pub.Datadir, "--json", "model", "publish", path, "--price-tokens", "0.5")), &res); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error { _, err := tr.Client().ModelGet(t.Context(), res.ModelID); return err })
	if show := cli(t, false, "--datadir", tr.Datadir, "model", "show", res.ModelID); !strings.Contains(show, "0.5 ICP (50000000 base units) + fee 0.0001 ICP") {
		t.Errorf("model show printed\n%s\nwant the price as tokens with base units and the fee", show)
	}
	out := cli(t, false, "--datadir", tr.Datadir, "--json", "model", "pay", res.ModelID)
	var pay adminrpc.PayResult
	if err := json.Unmarshal([]byte(out), &pay); err != nil {
		t.Fatalf("model pay --json printed %q: %v", out, err)
	}
	if pay.Amount != "50000000" || pay.AmountTokens != "0.5 ICP" || pay.Fee != "10000" || pay.FeeTokens != "0.0001 ICP" {
		t.Errorf("model pay --json = %+v, want 50000000 base units = 0.5 ICP, fee 10000 = 0.0001 ICP", pay)
	}
	if human := cli(t, false, "--datadir", tr.Datadir, "ledger", "balance"); !strings.Contains(human, "0.4999 ICP (49990000 base units)") {
		t.Errorf("ledger balance after paying 0.5 + 0.0001 ICP of 1 ICP printed\n%s", human)
	}
}
