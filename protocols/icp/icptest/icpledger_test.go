package icptest

import (
	"crypto/sha256"
	"net/url"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go"
	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/aviate-labs/agent-go/identity"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
	"math/big"
)

// queryBlocksResponse is ledger.did's QueryBlocksResponse, decoded by an unmodified agent-go.
type queryBlocksResponse struct {
	ChainLength     uint64           `ic:"chain_length"`
	Certificate     *[]byte          `ic:"certificate"`
	Blocks          []icpCandidBlock `ic:"blocks"`
	FirstBlockIndex uint64           `ic:"first_block_index"`
	ArchivedBlocks  []struct {
		Start    uint64       `ic:"start"`
		Length   uint64       `ic:"length"`
		Callback idl.Function `ic:"callback"`
	} `ic:"archived_blocks"`
}

// TestICPLedgerInterface drives the ICP-ledger mode's ledger.did methods with agent-go.
func TestICPLedgerInterface(t *testing.T) {
	s, err := New(Options{ICPLedger: true, ArchiveBelow: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, _ := identity.NewRandomEd25519Identity()
	u, _ := url.Parse(s.URL())
	a, err := agent.New(agent.Config{Identity: id, FetchRootKey: true, ClientConfig: []agent.ClientOption{agent.WithHostURL(u)}})
	if err != nil {
		t.Fatal(err)
	}
	ledger := principal.MustDecode(LedgerID)
	s.Mint(id.Sender(), 1_000_000)
	s.Mint(id.Sender(), 1)
	to := icp.Account{Owner: ledger}
	memo := []byte("0123456789abcdef0123456789abcdef")
	c, err := icp.New(icp.Config{ReplicaURL: s.URL(), LedgerID: LedgerID, FetchRootKey: true, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := c.Transfer(t.Context(), to, big.NewInt(700), memo, time.Now())
	if err != nil || idx != 2 {
		t.Fatalf("Transfer = %d, %v", idx, err)
	}

	var res queryBlocksResponse
	if err := a.Query(ledger, "query_blocks", []any{icp.ICPBlocksArgs{Start: 0, Length: 10}}, []any{&res}); err != nil {
		t.Fatal(err)
	}
	if res.ChainLength != 3 || res.FirstBlockIndex != 2 || len(res.Blocks) != 1 || len(res.ArchivedBlocks) != 1 || res.Certificate == nil {
		t.Fatalf("query_blocks = %+v", res)
	}
	b := res.Blocks[0]
	op := b.Transaction.Operation
	toID, fromID := to.ID(), icp.Account{Owner: id.Sender()}.ID()
	if op == nil || op.Transfer == nil || op.Transfer.Amount.E8s != 700 || op.Transfer.Fee.E8s != 10_000 ||
		string(op.Transfer.To) != string(toID[:]) || string(op.Transfer.From) != string(fromID[:]) ||
		b.Transaction.Icrc1Memo == nil || string(*b.Transaction.Icrc1Memo) != string(memo) || b.ParentHash == nil {
		t.Errorf("query_blocks block 2 = %+v", b)
	}
	if arch := res.ArchivedBlocks[0]; arch.Start != 0 || arch.Length != 2 || !arch.Callback.Method.Principal.Equal(s.archive) || arch.Callback.Method.Method != "get_blocks" {
		t.Errorf("archived range = %+v", arch)
	}
	var page icpQueryArchiveResult
	if err := a.Query(s.archive, "get_blocks", []any{icp.ICPBlocksArgs{Start: 0, Length: 2}}, []any{&page}); err != nil || page.Ok == nil || len(page.Ok.Blocks) != 2 || page.Ok.Blocks[0].Transaction.Operation.Mint == nil {
		t.Errorf("archive get_blocks = %+v, %v", page, err)
	}
	var enc icp.GetEncodedBlocksResult
	if err := a.Query(s.archive, "get_encoded_blocks", []any{icp.ICPBlocksArgs{Start: 1, Length: 1}}, []any{&enc}); err != nil || enc.Ok == nil || len(*enc.Ok) != 1 {
		t.Fatalf("archive get_encoded_blocks = %+v, %v", enc, err)
	}
	if h := sha256.Sum256((*enc.Ok)[0]); string(h[:]) != string(*b.ParentHash) {
		t.Errorf("block 1 hashes to %x, block 2's parent_hash is %x", h, *b.ParentHash)
	}
	var bal icpTokens
	if err := a.Query(ledger, "account_balance", []any{struct {
		Account []byte `ic:"account"`
	}{fromID[:]}}, []any{&bal}); err != nil || bal.E8s != 1_000_001-700-10_000 {
		t.Errorf("account_balance = %+v, %v", bal, err)
	}
	var as icp.Archives
	if err := a.Query(ledger, "archives", []any{}, []any{&as}); err != nil || len(as.Archives) != 1 || !as.Archives[0].CanisterID.Equal(s.archive) {
		t.Errorf("archives = %+v, %v", as, err)
	}
	var stds []icp.StandardRecord
	if err := a.Query(ledger, "icrc1_supported_standards", []any{}, []any{&stds}); err != nil || len(stds) == 0 {
		t.Fatalf("icrc1_supported_standards = %v, %v", stds, err)
	}
	for _, st := range stds {
		if st.Name == "ICRC-3" {
			t.Errorf("the ICP ledger lists ICRC-3")
		}
	}
	// The legacy transfer to an account known only by its identifier, then to a known account.
	stranger := icp.AccountIDOf(principal.MustDecode("rrkah-fqaaa-aaaaa-aaaaq-cai"), []byte{31: 5})
	for _, dest := range []icp.AccountID{stranger, toID} {
		var tr icpLegacyTransferResult
		arg := icpLegacyTransferArgs{Memo: 42, Amount: icpTokens{300}, Fee: icpTokens{10_000}, To: dest[:]}
		if err := a.Call(ledger, "transfer", []any{arg}, []any{&tr}); err != nil || tr.Ok == nil {
			t.Fatalf("transfer to %s = %+v, %v", dest, tr, err)
		}
		var got icpTokens
		a.Query(ledger, "account_balance", []any{struct {
			Account []byte `ic:"account"`
		}{dest[:]}}, []any{&got})
		want := uint64(300)
		if dest == toID {
			want = 1000
		}
		if got.E8s != want {
			t.Errorf("account_balance(%s) after a legacy transfer = %d, want %d", dest, got.E8s, want)
		}
		var q queryBlocksResponse
		if err := a.Query(ledger, "query_blocks", []any{icp.ICPBlocksArgs{Start: *tr.Ok, Length: 1}}, []any{&q}); err != nil || len(q.Blocks) != 1 ||
			q.Blocks[0].Transaction.Operation.Transfer == nil || string(q.Blocks[0].Transaction.Operation.Transfer.To) != string(dest[:]) {
			t.Errorf("block of the legacy transfer = %+v, %v", q, err)
		}
	}
	var bad icpLegacyTransferResult
	if err := a.Call(ledger, "transfer", []any{icpLegacyTransferArgs{Amount: icpTokens{1}, Fee: icpTokens{1}, To: stranger[:]}}, []any{&bad}); err != nil || bad.Err == nil || bad.Err.BadFee == nil {
		t.Errorf("legacy transfer with a wrong fee = %+v, %v; want BadFee", bad, err)
	}
	var dc *icp.DataCertificate
	if err := a.Query(ledger, "icrc3_get_tip_certificate", []any{}, []any{&dc}); err == nil {
		t.Errorf("icrc3_get_tip_certificate answered on the ICP ledger")
	}
}
