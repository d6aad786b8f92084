package icp_test

import (
	"math/big"
	"testing"

	"github.com/aviate-labs/agent-go/candid"
	"github.com/aviate-labs/agent-go/candid/idl"
	pb "github.com/aviate-labs/agent-go/clients/ledger/proto/v1"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
	"github.com/califusion/califusion/protocols/icp/icptest"
	"google.golang.org/protobuf/proto"
)

func seedBlock(f *testing.F) []byte {
	from := icp.AccountIDOf(principal.AnonymousID, nil)
	to := icp.AccountIDOf(principal.MustDecode(icptest.LedgerID), nil)
	b := &pb.Block{
		ParentHash: &pb.Hash{Hash: make([]byte, 32)},
		Timestamp:  &pb.TimeStamp{TimestampNanos: 1},
		Transaction: &pb.Transaction{
			Memo: &pb.Memo{}, Icrc1Memo: &pb.Icrc1Memo{Memo: []byte("m")},
			Transfer: &pb.Transaction_Send{Send: &pb.Send{From: &pb.AccountIdentifier{Hash: from[:]}, To: &pb.AccountIdentifier{Hash: to[:]}, Amount: &pb.Tokens{E8S: 700}, MaxFee: &pb.Tokens{E8S: 10_000}}},
		},
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

// FuzzDecodeICPBlock feeds arbitrary bytes to the encoded-block decoder and the transfer check
// behind it: they must return an error or a payment, never panic.
func FuzzDecodeICPBlock(f *testing.F) {
	raw := seedBlock(f)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	want := icp.Expect{Payer: icp.Account{Owner: principal.AnonymousID}, Payee: icp.Account{Owner: principal.MustDecode(icptest.LedgerID)}, MinAmount: big.NewInt(1), Memo: []byte("m")}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, _, err := icp.DecodeICPBlock(data)
		if err != nil {
			return
		}
		icp.CheckICPTransfer(0, b, want)
	})
}

// FuzzICPArchiveReply decodes arbitrary bytes as the ledger's query_encoded_blocks reply and as an
// archive's get_encoded_blocks reply, then each block in them.
func FuzzICPArchiveReply(f *testing.F) {
	raw := seedBlock(f)
	ok := [][]byte{raw, raw}
	arch, err := candid.Marshal([]any{icp.GetEncodedBlocksResult{Ok: &ok}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(arch)
	f.Add(arch[:len(arch)-4])
	q, err := icptest.MarshalQueryEncodedBlocks([]byte("cert"), [][]byte{raw}, 10, 9, []icp.ICPBlocksArgs{{Start: 0, Length: 9}},
		idl.PrincipalMethod{Principal: principal.MustDecode(icptest.ArchiveID), Method: "get_encoded_blocks"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q)
	f.Add(q[:len(q)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		var r icp.GetEncodedBlocksResult
		if icp.DecodeCandid(data, []any{&r}) == nil && r.Ok != nil {
			for _, b := range *r.Ok {
				icp.DecodeICPBlock(b)
			}
		}
		var res icp.QueryEncodedBlocksResponse
		if icp.DecodeCandid(data, []any{&res}) == nil {
			for _, b := range res.Blocks {
				icp.DecodeICPBlock(b)
			}
		}
	})
}
