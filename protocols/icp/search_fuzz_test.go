package icp

import (
	"bytes"
	"math/big"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
)

// FuzzSentBlock builds ledger blocks from arbitrary fields and runs FindTransfer's matcher on
// them: nothing may panic, and a block taken for the sent transfer must carry its exact sender,
// payee, amount, memo and created_at_time. (The Candid decoding of replies has its own target,
// FuzzBlocksReply.)
func FuzzSentBlock(f *testing.F) {
	me, payee := principal.MustDecode("2vxsx-fae"), principal.MustDecode("aaaaa-aa")
	s := Sent{To: Account{Owner: payee}, Amount: big.NewInt(5), Memo: []byte("m"), CreatedAt: 42}
	f.Add("1xfer", me.Raw, payee.Raw, []byte{}, uint64(5), []byte("m"), uint64(42), false, false)
	f.Add("", me.Raw, payee.Raw, make([]byte, 32), uint64(5), []byte("m"), uint64(42), true, false)
	f.Add("1xfer", me.Raw, payee.Raw, []byte{}, uint64(5), []byte("m"), uint64(42), false, true)
	f.Add("1mint", []byte{}, payee.Raw, []byte{1}, uint64(6), []byte{}, uint64(0), false, false)
	f.Fuzz(func(t *testing.T, btype string, from, to, toSub []byte, amt uint64, memo []byte, ts uint64, legacy, spender bool) {
		tx := []MapEntry{
			{"amt", NatValue(amt)},
			{"from", ArrayValue(BlobValue(from))},
			{"memo", BlobValue(memo)},
			{"ts", NatValue(ts)},
		}
		toItems := []Value{BlobValue(to)}
		if len(toSub) > 0 {
			toItems = append(toItems, BlobValue(toSub))
		}
		tx = append(tx, MapEntry{"to", ArrayValue(toItems...)})
		if spender {
			tx = append(tx, MapEntry{"spender", ArrayValue(BlobValue(from))})
		}
		var entries []MapEntry
		if legacy {
			tx = append(tx, MapEntry{"op", TextValue("xfer")})
		} else {
			entries = append(entries, MapEntry{"btype", TextValue(btype)})
		}
		b := MapValue(append(entries, MapEntry{"tx", MapValue(tx...)})...)
		if !isSent(b, Account{Owner: me}, s) {
			return
		}
		zero := len(toSub) == 0 || bytes.Equal(toSub, make([]byte, 32))
		if !bytes.Equal(from, me.Raw) || !bytes.Equal(to, payee.Raw) || !zero || amt != 5 || !bytes.Equal(memo, s.Memo) || ts != s.CreatedAt || spender {
			t.Fatalf("took from %x to %x/%x amt %d memo %q ts %d spender %v for the sent transfer", from, to, toSub, amt, memo, ts, spender)
		}
	})
}
