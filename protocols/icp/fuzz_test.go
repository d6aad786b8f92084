package icp

import (
	"testing"

	"github.com/aviate-labs/agent-go/candid"
	"github.com/aviate-labs/agent-go/principal"
)

// FuzzBlocksReply feeds arbitrary bytes to the icrc3_get_blocks decoder and, when they decode,
// through the hash and the payment checks: none may panic, and a block accepted as a payment
// must really carry the expected memo and payee.
func FuzzBlocksReply(f *testing.F) {
	owner := principal.MustDecode("aaaaa-aa")
	memo := []byte("m")
	block := MapValue(
		MapEntry{"btype", TextValue("1xfer")},
		MapEntry{"tx", MapValue(
			MapEntry{"amt", NatValue(5)},
			MapEntry{"from", ArrayValue(BlobValue(owner.Raw))},
			MapEntry{"to", ArrayValue(BlobValue(owner.Raw))},
			MapEntry{"memo", BlobValue(memo)},
		)},
	)
	seed, err := candid.Marshal([]any{struct {
		LogLength uint64        `ic:"log_length"`
		Blocks    []BlockWithID `ic:"blocks"`
	}{1, []BlockWithID{{Block: block}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("DIDL\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var res GetBlocksResult
		if candid.Unmarshal(b, []any{&res}) != nil {
			return
		}
		for _, blk := range res.Blocks {
			blk.Block.Hash()
			p, err := checkTransfer(0, blk.Block, Expect{Payer: Account{Owner: owner}, Payee: Account{Owner: owner}, Memo: memo})
			if err == nil && string(p.Memo) != string(memo) {
				t.Fatalf("accepted a payment with memo %q", p.Memo)
			}
		}
	})
}
