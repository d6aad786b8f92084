package icptest

import (
	"crypto/sha256"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/aviate-labs/agent-go/candid"
	"github.com/aviate-labs/agent-go/candid/idl"
	pb "github.com/aviate-labs/agent-go/clients/ledger/proto/v1"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/icp"
	"google.golang.org/protobuf/proto"
)

// ICP-ledger mode (Options.ICPLedger): the ledger canister answers as the ICP ledger does
// (rs/ledger_suite/icp/ledger.did, shared/specs/ICP.md §7): query_blocks, query_encoded_blocks,
// archives, account_balance, the ICRC-1 methods, supported standards without ICRC-3, and no
// icrc3_* method. Its blocks are the protobuf encodings of the same transactions the ICRC-1
// ledger executes (balances, fees, deduplication stay in Ledger), chained by parent_hash; its
// certified data is the last block's hash. Blocks below ArchiveBelow are served by the archive
// canister's get_encoded_blocks / get_blocks.

// ICPView is the ICP ledger's block log over a Ledger, with knobs for tests.
type ICPView struct {
	l *Ledger

	mu       sync.Mutex
	enc      [][]byte             // encoded blocks, as certified
	hashes   [][32]byte           // SHA-256 of enc
	served   map[uint64][]byte    // tampered bytes served instead (the chain is not fixed)
	forgeTip bool                 // certify a hash that is no block's
	callback *principal.Principal // archive callbacks name this canister instead
}

// ICP returns the ICP-ledger view, or nil when the Sim runs an ICRC-3 ledger.
func (s *Sim) ICP() *ICPView { return s.icpv }

// encodeMarshal is deterministic, so a block's hash does not depend on map order or the run.
var encodeMarshal = proto.MarshalOptions{Deterministic: true}

func accountIDProto(v *icp.Value) (*pb.AccountIdentifier, error) {
	if v == nil || v.Array == nil || len(*v.Array) == 0 || (*v.Array)[0].Blob == nil {
		return nil, fmt.Errorf("not an account")
	}
	a := icp.Account{Owner: principal.Principal{Raw: *(*v.Array)[0].Blob}}
	if len(*v.Array) > 1 && (*v.Array)[1].Blob != nil {
		sub := *(*v.Array)[1].Blob
		a.Subaccount = &sub
	}
	id := idOf(a)
	return &pb.AccountIdentifier{Hash: id[:]}, nil
}

func natOf(v *icp.Value) uint64 {
	if v == nil || v.Nat == nil {
		return 0
	}
	return v.Nat.BigInt().Uint64()
}

// protoBlock converts an ICRC-3 block of the emulated ledger into the ICP ledger's Block.
func protoBlock(b icp.Value, parent *[32]byte) (*pb.Block, error) {
	tx := b.Field("tx")
	if tx == nil {
		return nil, fmt.Errorf("block without tx")
	}
	out := &pb.Block{Timestamp: &pb.TimeStamp{TimestampNanos: natOf(b.Field("ts"))}}
	if parent != nil {
		out.ParentHash = &pb.Hash{Hash: append([]byte(nil), parent[:]...)}
	}
	t := &pb.Transaction{Memo: &pb.Memo{Memo: 0}}
	if m := tx.Field("memo"); m != nil && m.Blob != nil {
		t.Icrc1Memo = &pb.Icrc1Memo{Memo: append([]byte(nil), *m.Blob...)}
	}
	if ts := tx.Field("ts"); ts != nil {
		t.CreatedAtTime = &pb.TimeStamp{TimestampNanos: natOf(ts)}
	} else {
		t.CreatedAtTime = &pb.TimeStamp{TimestampNanos: out.Timestamp.TimestampNanos}
	}
	btype := ""
	if v := b.Field("btype"); v != nil && v.Text != nil {
		btype = *v.Text
	} else if v := tx.Field("op"); v != nil && v.Text != nil {
		btype = "1" + *v.Text
	}
	amount := &pb.Tokens{E8S: natOf(tx.Field("amt"))}
	switch btype {
	case "1mint":
		to, err := accountIDProto(tx.Field("to"))
		if err != nil {
			return nil, err
		}
		t.Transfer = &pb.Transaction_Mint{Mint: &pb.Mint{To: to, Amount: amount}}
	case "1xfer":
		from, err := accountIDProto(tx.Field("from"))
		if err != nil {
			return nil, err
		}
		to, err := accountIDProto(tx.Field("to"))
		if err != nil {
			return nil, err
		}
		fee := b.Field("fee")
		if fee == nil {
			fee = tx.Field("fee")
		}
		t.Transfer = &pb.Transaction_Send{Send: &pb.Send{From: from, To: to, Amount: amount, MaxFee: &pb.Tokens{E8S: natOf(fee)}}}
	default:
		return nil, fmt.Errorf("block type %q has no ICP ledger form", btype)
	}
	out.Transaction = t
	return out, nil
}

// sync encodes the blocks the ledger appended since the last call. Callers hold no locks.
func (v *ICPView) sync() {
	v.l.mu.Lock()
	blocks := v.l.blocks
	v.l.mu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := len(v.enc); i < len(blocks); i++ {
		var parent *[32]byte
		if i > 0 {
			parent = &v.hashes[i-1]
		}
		pbb, err := protoBlock(blocks[i], parent)
		var raw []byte
		if err == nil {
			raw, err = encodeMarshal.Marshal(pbb)
		}
		if err != nil {
			raw = nil // unreachable for blocks the emulator writes; an empty block breaks no lock
		}
		v.enc = append(v.enc, raw)
		v.hashes = append(v.hashes, sha256.Sum256(raw))
	}
}

// length returns the chain length.
func (v *ICPView) length() uint64 {
	v.sync()
	v.mu.Lock()
	defer v.mu.Unlock()
	return uint64(len(v.enc))
}

// TipHash returns the hash the ledger certifies: its last block's (zero for an empty chain).
func (v *ICPView) TipHash() [32]byte {
	v.sync()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.forgeTip {
		return sha256.Sum256([]byte("no block has this hash"))
	}
	if len(v.hashes) == 0 {
		return [32]byte{}
	}
	return v.hashes[len(v.hashes)-1]
}

// Encoded returns block i's encoding as certified.
func (v *ICPView) Encoded(i uint64) []byte {
	v.sync()
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]byte(nil), v.enc[i]...)
}

// Serve makes the ledger (or archive) answer raw for block i from now on, without fixing the chain.
func (v *ICPView) Serve(i uint64, raw []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.served == nil {
		v.served = map[uint64][]byte{}
	}
	v.served[i] = raw
}

// ForgeTip makes the certificate certify a hash that is no block's (on), or the tip again (off).
func (v *ICPView) ForgeTip(on bool) {
	v.mu.Lock()
	v.forgeTip = on
	v.mu.Unlock()
}

// CallbackTo makes archive callbacks name canister p instead of the archive.
func (v *ICPView) CallbackTo(p principal.Principal) {
	v.mu.Lock()
	v.callback = &p
	v.mu.Unlock()
}

// blocks returns blocks [start, end) as served (tampering applied).
func (v *ICPView) blocks(start, end uint64) [][]byte {
	v.sync()
	v.mu.Lock()
	defer v.mu.Unlock()
	end = min(end, uint64(len(v.enc)))
	out := [][]byte{}
	for i := start; i < end; i++ {
		if raw, ok := v.served[i]; ok {
			out = append(out, raw)
			continue
		}
		out = append(out, v.enc[i])
	}
	return out
}

// Candid types of ledger.did built for encoding (func-typed fields need explicit types).

type icpTokens struct {
	E8s uint64 `ic:"e8s"`
}

type icpTimeStamp struct {
	TimestampNanos uint64 `ic:"timestamp_nanos"`
}

type icpOperation struct {
	Mint *struct {
		To     []byte    `ic:"to"`
		Amount icpTokens `ic:"amount"`
	} `ic:"Mint,variant"`
	Burn *struct {
		From    []byte    `ic:"from"`
		Spender *[]byte   `ic:"spender"`
		Amount  icpTokens `ic:"amount"`
	} `ic:"Burn,variant"`
	Transfer *struct {
		From    []byte    `ic:"from"`
		To      []byte    `ic:"to"`
		Amount  icpTokens `ic:"amount"`
		Fee     icpTokens `ic:"fee"`
		Spender *[]byte   `ic:"spender"`
	} `ic:"Transfer,variant"`
	Approve *struct {
		From              []byte        `ic:"from"`
		Spender           []byte        `ic:"spender"`
		AllowanceE8s      idl.Int       `ic:"allowance_e8s"`
		Allowance         icpTokens     `ic:"allowance"`
		Fee               icpTokens     `ic:"fee"`
		ExpiresAt         *icpTimeStamp `ic:"expires_at"`
		ExpectedAllowance *icpTokens    `ic:"expected_allowance"`
	} `ic:"Approve,variant"`
}

type icpTransaction struct {
	Memo          uint64        `ic:"memo"`
	Icrc1Memo     *[]byte       `ic:"icrc1_memo"`
	Operation     *icpOperation `ic:"operation"`
	CreatedAtTime icpTimeStamp  `ic:"created_at_time"`
}

type icpCandidBlock struct {
	ParentHash  *[]byte        `ic:"parent_hash"`
	Transaction icpTransaction `ic:"transaction"`
	Timestamp   icpTimeStamp   `ic:"timestamp"`
}

type icpBlockRange struct {
	Blocks []icpCandidBlock `ic:"blocks"`
}

type icpQueryArchiveResult struct {
	Ok  *icpBlockRange         `ic:"Ok,variant"`
	Err *icp.QueryArchiveError `ic:"Err,variant"`
}

// candidBlock decodes an encoded block into ledger.did's Block record.
func candidBlock(raw []byte) (icpCandidBlock, error) {
	var b pb.Block
	if err := proto.Unmarshal(raw, &b); err != nil {
		return icpCandidBlock{}, err
	}
	out := icpCandidBlock{Timestamp: icpTimeStamp{b.GetTimestamp().GetTimestampNanos()}}
	if b.ParentHash != nil {
		h := append([]byte(nil), b.ParentHash.Hash...)
		out.ParentHash = &h
	}
	tx := b.GetTransaction()
	out.Transaction.Memo = tx.GetMemo().GetMemo()
	out.Transaction.CreatedAtTime = icpTimeStamp{tx.GetCreatedAtTime().GetTimestampNanos()}
	if tx.GetIcrc1Memo() != nil {
		m := append([]byte(nil), tx.GetIcrc1Memo().GetMemo()...)
		out.Transaction.Icrc1Memo = &m
	}
	op := &icpOperation{}
	switch {
	case tx.GetMint() != nil:
		m := tx.GetMint()
		op.Mint = &struct {
			To     []byte    `ic:"to"`
			Amount icpTokens `ic:"amount"`
		}{m.GetTo().GetHash(), icpTokens{m.GetAmount().GetE8S()}}
	case tx.GetSend() != nil:
		s := tx.GetSend()
		op.Transfer = &struct {
			From    []byte    `ic:"from"`
			To      []byte    `ic:"to"`
			Amount  icpTokens `ic:"amount"`
			Fee     icpTokens `ic:"fee"`
			Spender *[]byte   `ic:"spender"`
		}{s.GetFrom().GetHash(), s.GetTo().GetHash(), icpTokens{s.GetAmount().GetE8S()}, icpTokens{s.GetMaxFee().GetE8S()}, nil}
	default:
		op = nil
	}
	out.Transaction.Operation = op
	return out, nil
}

func encodeFail(err error) ([]byte, *reject) { return nil, &reject{5, "encode reply: " + err.Error()} }

// marshalQueryBlocks encodes QueryEncodedBlocksResponse (encoded) or QueryBlocksResponse.
func marshalQueryBlocks(encoded bool, cert []byte, blocks [][]byte, chainLen, first uint64, archived []icp.ICPBlocksArgs, cb *idl.PrincipalMethod) ([]byte, *reject) {
	nat64T, _ := idl.TypeOf(uint64(0))
	certT, err := idl.TypeOf(&[]byte{})
	if err != nil {
		return encodeFail(err)
	}
	argsT, err := idl.TypeOf(icp.ICPBlocksArgs{})
	if err != nil {
		return encodeFail(err)
	}
	var blocksT, cbResT idl.Type
	var blockVals []any
	if encoded {
		if blocksT, err = idl.TypeOf([][]byte{}); err != nil {
			return encodeFail(err)
		}
		if cbResT, err = idl.TypeOf(icp.GetEncodedBlocksResult{}); err != nil {
			return encodeFail(err)
		}
		for _, b := range blocks {
			blockVals = append(blockVals, b)
		}
	} else {
		if blocksT, err = idl.TypeOf([]icpCandidBlock{}); err != nil {
			return encodeFail(err)
		}
		if cbResT, err = idl.TypeOf(icpQueryArchiveResult{}); err != nil {
			return encodeFail(err)
		}
		for _, raw := range blocks {
			cbk, err := candidBlock(raw)
			if err != nil {
				return nil, &reject{5, "block does not decode: " + err.Error()}
			}
			blockVals = append(blockVals, cbk)
		}
	}
	callbackT := idl.NewFunctionType([]idl.FunctionParameter{{Type: argsT}}, []idl.FunctionParameter{{Type: cbResT}}, []string{"query"})
	archT := idl.NewVectorType(idl.NewRecordType(map[string]idl.Type{"start": nat64T, "length": nat64T, "callback": callbackT}))
	resT := idl.NewRecordType(map[string]idl.Type{
		"certificate": certT, "blocks": blocksT, "chain_length": nat64T, "first_block_index": nat64T, "archived_blocks": archT,
	})
	arch := []any{}
	for _, a := range archived {
		arch = append(arch, map[string]any{"start": a.Start, "length": a.Length, "callback": cb})
	}
	var certV *[]byte
	if cert != nil {
		certV = &cert
	}
	if blockVals == nil {
		blockVals = []any{}
	}
	b, err := candid.Encode([]idl.Type{resT}, []any{map[string]any{
		"certificate": certV, "blocks": blockVals, "chain_length": chainLen, "first_block_index": first, "archived_blocks": arch,
	}})
	if err != nil {
		return encodeFail(err)
	}
	return b, nil
}

// icpQueryBlocks serves query_blocks / query_encoded_blocks on the ledger canister.
func (s *Sim) icpQueryBlocks(encoded bool, arg []byte) ([]byte, *reject) {
	var a icp.ICPBlocksArgs
	if err := candid.Unmarshal(arg, []any{&a}); err != nil {
		return nil, &reject{5, "invalid argument: " + err.Error()}
	}
	v := s.icpv
	n := v.length()
	start, end := a.Start, min(a.Start+min(a.Length, s.opts.PageSize), n)
	if a.Start+a.Length < a.Start { // overflow
		end = n
	}
	var archived []icp.ICPBlocksArgs
	if start < s.opts.ArchiveBelow && start < end {
		cut := min(end, s.opts.ArchiveBelow)
		for range s.repeatArchived() {
			archived = append(archived, icp.ICPBlocksArgs{Start: start, Length: cut - start})
		}
		start = cut
	}
	first := start
	var blocks [][]byte
	if start < end {
		blocks = v.blocks(start, end)
	}
	cert, err := s.certificate(newTrie())
	if err != nil {
		return nil, &reject{5, err.Error()}
	}
	method := "get_blocks"
	if encoded {
		method = "get_encoded_blocks"
	}
	target := s.archive
	v.mu.Lock()
	if v.callback != nil {
		target = *v.callback
	}
	v.mu.Unlock()
	return marshalQueryBlocks(encoded, cert, blocks, n, first, archived, &idl.PrincipalMethod{Principal: target, Method: method})
}

// icpArchiveQuery serves the archive canister in ICP-ledger mode.
func (s *Sim) icpArchiveQuery(method string, arg []byte) ([]byte, *reject) {
	if method != "get_encoded_blocks" && method != "get_blocks" {
		return nil, &reject{3, "no such method " + method}
	}
	var a icp.ICPBlocksArgs
	if err := candid.Unmarshal(arg, []any{&a}); err != nil {
		return nil, &reject{5, "invalid argument: " + err.Error()}
	}
	end := min(a.Start+min(a.Length, s.opts.PageSize), s.opts.ArchiveBelow, s.icpv.length())
	blocks := [][]byte{}
	if a.Start < end {
		blocks = s.icpv.blocks(a.Start, end)
	}
	if method == "get_encoded_blocks" {
		return mustMarshal(icp.GetEncodedBlocksResult{Ok: &blocks})
	}
	r := icpBlockRange{Blocks: []icpCandidBlock{}}
	for _, raw := range blocks {
		b, err := candidBlock(raw)
		if err != nil {
			return nil, &reject{5, "block does not decode: " + err.Error()}
		}
		r.Blocks = append(r.Blocks, b)
	}
	return mustMarshal(icpQueryArchiveResult{Ok: &r})
}

// balanceOfID finds the balance of the account whose identifier is id.
func (l *Ledger) balanceOfID(id icp.AccountID) *big.Int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, b := range l.balances {
		if len(k) < 33 {
			continue
		}
		owner, sub := []byte(k[:len(k)-33]), []byte(k[len(k)-32:])
		if idOf(icp.Account{Owner: principal.Principal{Raw: owner}, Subaccount: &sub}) == id {
			return b
		}
	}
	return new(big.Int)
}

func standards(icrc3 bool) []icp.StandardRecord {
	out := []icp.StandardRecord{
		{Name: "ICRC-1", URL: "https://github.com/dfinity/ICRC-1/tree/main/standards/ICRC-1"},
		{Name: "ICRC-2", URL: "https://github.com/dfinity/ICRC-1/tree/main/standards/ICRC-2"},
	}
	if icrc3 {
		out = append(out, icp.StandardRecord{Name: "ICRC-3", URL: "https://github.com/dfinity/ICRC-1/tree/main/standards/ICRC-3"})
	}
	return append(out, icp.StandardRecord{Name: "ICRC-10", URL: "https://github.com/dfinity/ICRC/tree/main/ICRCs/ICRC-10"})
}

// extraQuery answers the methods that depend on the ledger kind; ok is false for the others.
func (s *Sim) extraQuery(method string, arg []byte) (reply []byte, rej *reject, ok bool) {
	icpMode := s.icpv != nil
	switch {
	case method == "icrc1_supported_standards" || method == "icrc10_supported_standards":
		reply, rej = mustMarshal(standards(!icpMode))
		return reply, rej, true
	case !icpMode:
		return nil, nil, false
	case strings.HasPrefix(method, "icrc3_"):
		return nil, &reject{3, "no such method " + method}, true
	case method == "query_encoded_blocks" || method == "query_blocks":
		reply, rej = s.icpQueryBlocks(method == "query_encoded_blocks", arg)
		return reply, rej, true
	case method == "archives":
		as := icp.Archives{Archives: []icp.ArchiveInfo{}}
		if s.opts.ArchiveBelow > 0 {
			as.Archives = append(as.Archives, icp.ArchiveInfo{CanisterID: s.archive})
		}
		reply, rej = mustMarshal(as)
		return reply, rej, true
	case method == "account_balance":
		var a struct {
			Account []byte `ic:"account"`
		}
		if err := candid.Unmarshal(arg, []any{&a}); err != nil {
			return nil, &reject{5, "invalid argument: " + err.Error()}, true
		}
		id, err := icp.AccountIDFromBytes(a.Account)
		if err != nil || len(a.Account) != 32 {
			return nil, &reject{5, "invalid account identifier"}, true
		}
		reply, rej = mustMarshal(icpTokens{E8s: s.ledger.balanceOfID(id).Uint64()})
		return reply, rej, true
	case method == "transfer_fee":
		reply, rej = mustMarshal(struct {
			TransferFee icpTokens `ic:"transfer_fee"`
		}{icpTokens{s.opts.Fee}})
		return reply, rej, true
	case method == "symbol" || method == "name" || method == "decimals":
		switch method {
		case "symbol":
			reply, rej = mustMarshal(struct {
				Symbol string `ic:"symbol"`
			}{"ICP"})
		case "name":
			reply, rej = mustMarshal(struct {
				Name string `ic:"name"`
			}{"Internet Computer (emulated)"})
		default:
			reply, rej = mustMarshal(struct {
				Decimals uint32 `ic:"decimals"`
			}{8})
		}
		return reply, rej, true
	}
	return nil, nil, false
}

// MarshalQueryEncodedBlocks encodes a query_encoded_blocks reply exactly as the emulator sends
// it (archive callbacks typed as ledger.did defines them); fuzz seeds use it.
func MarshalQueryEncodedBlocks(cert []byte, blocks [][]byte, chainLen, first uint64, archived []icp.ICPBlocksArgs, cb idl.PrincipalMethod) ([]byte, error) {
	b, rej := marshalQueryBlocks(true, cert, blocks, chainLen, first, archived, &cb)
	if rej != nil {
		return nil, fmt.Errorf("%s", rej.msg)
	}
	return b, nil
}

// idHolderPrefix marks the owner of an account the ledger knows only by its identifier (the
// legacy transfer names its recipient that way): prefix ‖ 32-byte account identifier.
const idHolderPrefix = "\xffaccount-id-holder"

// idOf returns an account's identifier, reading it back for an identifier-only holder.
func idOf(a icp.Account) icp.AccountID {
	if raw := a.Owner.Raw; len(raw) == len(idHolderPrefix)+32 && string(raw[:len(idHolderPrefix)]) == idHolderPrefix {
		return icp.AccountID(raw[len(idHolderPrefix):])
	}
	return a.ID()
}

// accountOfID returns the ICRC-1 account with identifier id among those holding a balance, or an
// identifier-only holder for it.
func (l *Ledger) accountOfID(id icp.AccountID) icp.Account {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.balances {
		if len(k) < 33 {
			continue
		}
		owner, sub := []byte(k[:len(k)-33]), []byte(k[len(k)-32:])
		a := icp.Account{Owner: principal.Principal{Raw: owner}, Subaccount: &sub}
		if idOf(a) == id {
			return a
		}
	}
	return icp.Account{Owner: principal.Principal{Raw: append([]byte(idHolderPrefix), id[:]...)}}
}

// Legacy transfer (ledger.did TransferArgs / TransferResult).

type icpLegacyTransferArgs struct {
	Memo           uint64        `ic:"memo"`
	Amount         icpTokens     `ic:"amount"`
	Fee            icpTokens     `ic:"fee"`
	FromSubaccount *[]byte       `ic:"from_subaccount"`
	To             []byte        `ic:"to"`
	CreatedAtTime  *icpTimeStamp `ic:"created_at_time"`
}

type icpLegacyTransferError struct {
	BadFee *struct {
		ExpectedFee icpTokens `ic:"expected_fee"`
	} `ic:"BadFee,variant"`
	InsufficientFunds *struct {
		Balance icpTokens `ic:"balance"`
	} `ic:"InsufficientFunds,variant"`
	TxTooOld *struct {
		AllowedWindowNanos uint64 `ic:"allowed_window_nanos"`
	} `ic:"TxTooOld,variant"`
	TxCreatedInFuture *idl.Null `ic:"TxCreatedInFuture,variant"`
	TxDuplicate       *struct {
		DuplicateOf uint64 `ic:"duplicate_of"`
	} `ic:"TxDuplicate,variant"`
}

type icpLegacyTransferResult struct {
	Ok  *uint64                 `ic:"Ok,variant"`
	Err *icpLegacyTransferError `ic:"Err,variant"`
}

// legacyTransfer serves the ICP ledger's own transfer method through the same ledger logic as
// icrc1_transfer (the u64 memo is not kept in the block: the emulator records ICRC-1 memos).
func (s *Sim) legacyTransfer(caller principal.Principal, arg []byte) ([]byte, *reject) {
	var a icpLegacyTransferArgs
	if err := candid.Unmarshal(arg, []any{&a}); err != nil {
		return nil, &reject{5, "invalid argument: " + err.Error()}
	}
	if len(a.To) != 32 {
		return nil, &reject{5, "invalid account identifier: want 32 bytes"}
	}
	id, err := icp.AccountIDFromBytes(a.To)
	if err != nil {
		return nil, &reject{5, err.Error()}
	}
	fee := idl.NewNat(a.Fee.E8s)
	ta := icp.TransferArg{FromSubaccount: a.FromSubaccount, To: s.ledger.accountOfID(id), Amount: idl.NewNat(a.Amount.E8s), Fee: &fee}
	if a.CreatedAtTime != nil {
		ts := a.CreatedAtTime.TimestampNanos
		ta.CreatedAtTime = &ts
	}
	res := s.ledger.Transfer(caller, ta)
	out := icpLegacyTransferResult{}
	switch e := res.Err; {
	case res.Ok != nil:
		n := res.Ok.BigInt().Uint64()
		out.Ok = &n
	case e.BadFee != nil:
		out.Err = &icpLegacyTransferError{BadFee: &struct {
			ExpectedFee icpTokens `ic:"expected_fee"`
		}{icpTokens{e.BadFee.ExpectedFee.BigInt().Uint64()}}}
	case e.InsufficientFunds != nil:
		out.Err = &icpLegacyTransferError{InsufficientFunds: &struct {
			Balance icpTokens `ic:"balance"`
		}{icpTokens{e.InsufficientFunds.Balance.BigInt().Uint64()}}}
	case e.TooOld != nil:
		out.Err = &icpLegacyTransferError{TxTooOld: &struct {
			AllowedWindowNanos uint64 `ic:"allowed_window_nanos"`
		}{uint64(txWindow)}}
	case e.CreatedInFuture != nil:
		out.Err = &icpLegacyTransferError{TxCreatedInFuture: &idl.Null{}}
	case e.Duplicate != nil:
		out.Err = &icpLegacyTransferError{TxDuplicate: &struct {
			DuplicateOf uint64 `ic:"duplicate_of"`
		}{e.Duplicate.DuplicateOf.BigInt().Uint64()}}
	default:
		return nil, &reject{5, "the transfer failed"}
	}
	return mustMarshal(out)
}
