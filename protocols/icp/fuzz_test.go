package icp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/candid"
	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/aviate-labs/agent-go/certification"
	"github.com/aviate-labs/agent-go/certification/bls"
	"github.com/aviate-labs/agent-go/certification/hashtree"
	"github.com/aviate-labs/agent-go/leb128"
	"github.com/aviate-labs/agent-go/principal"
	bls12381 "github.com/consensys/gnark-crypto/ecc/bls12-381"
	"github.com/fxamacker/cbor/v2"
)

// pageOut is an icrc3_get_blocks reply without archives (agent-go cannot encode the callback's
// idl.Function from a Go value).
type pageOut struct {
	LogLength uint64        `ic:"log_length"`
	Blocks    []BlockWithID `ic:"blocks"`
}

func samplePage(t testing.TB) []byte {
	owner := principal.MustDecode("aaaaa-aa")
	block := MapValue(
		MapEntry{"btype", TextValue("1xfer")},
		MapEntry{"tx", MapValue(
			MapEntry{"amt", NatValue(5)},
			MapEntry{"from", ArrayValue(BlobValue(owner.Raw))},
			MapEntry{"to", ArrayValue(BlobValue(owner.Raw))},
			MapEntry{"memo", BlobValue([]byte("m"))},
		)},
	)
	seed, err := candid.Marshal([]any{pageOut{1, []BlockWithID{{Block: block}}}})
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

// FuzzBlocksReply feeds arbitrary bytes to the icrc3_get_blocks decoder (the bounded one the
// client uses) and, when they decode, through the hash and the payment checks: none may panic
// or run out of memory, and a block accepted as a payment must really carry the expected memo
// and payee.
func FuzzBlocksReply(f *testing.F) {
	owner := principal.MustDecode("aaaaa-aa")
	memo := []byte("m")
	f.Add(samplePage(f))
	f.Add([]byte("DIDL\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var res GetBlocksResult
		if decodeCandid(b, []any{&res}) != nil {
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

// FuzzCandidReply feeds arbitrary bytes to the bounded decoder for every reply type the client
// reads (tip certificate, transfer result, numbers, text): none may panic, hang or exhaust
// memory, and what checkCandid accepts agent-go must decode without panicking.
func FuzzCandidReply(f *testing.F) {
	for _, v := range []any{
		&DataCertificate{Certificate: []byte{1, 2}, HashTree: []byte{3}},
		TransferResult{Err: &TransferError{GenericError: &struct {
			ErrorCode idl.Nat `ic:"error_code"`
			Message   string  `ic:"message"`
		}{idl.NewNat(uint64(3)), "no"}}},
		idl.NewNat(uint64(1) << 40), "ICP", uint8(8),
	} {
		b, err := candid.Marshal([]any{v})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var dc *DataCertificate
		var tr TransferResult
		var n idl.Nat
		var s string
		var d uint8
		for _, out := range []any{&dc, &tr, &n, &s, &d} {
			decodeCandid(b, []any{out})
		}
		if checkCandid(b) == nil {
			// No recover here: a panic means checkCandid let through what agent-go cannot read.
			candid.Decode(b)
		}
	})
}

// tipFixture is a root key and a valid tip certificate for ledger over a tree naming index 7.
type tipFixture struct {
	ledger principal.Principal
	root   []byte
	cert   []byte
	tree   []byte
}

func newTipFixture(t testing.TB, tree hashtree.Node) tipFixture {
	sk := bls.NewSecretKeyByCSPRNG()
	pk := bls12381.G2Affine(*sk.PublicKey())
	pkb := pk.Bytes()
	root, err := certification.PublicBLSKeyToDER(pkb[:])
	if err != nil {
		t.Fatal(err)
	}
	ledger := principal.MustDecode("ryjl3-tyaaa-aaaaa-aaaba-cai")
	treeBytes, err := hashtree.NewHashTree(tree).MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	digest := tree.Reconstruct()
	now := leb128.AppendUnsignedUint64(nil, uint64(time.Now().UnixNano()))
	state := hashtree.NewHashTree(hashtree.Fork{
		LeftTree: hashtree.Labeled{Label: hashtree.Label("canister"), Tree: hashtree.Labeled{
			Label: ledger.Raw, Tree: hashtree.Labeled{Label: hashtree.Label("certified_data"), Tree: hashtree.Leaf(digest[:])},
		}},
		RightTree: hashtree.Labeled{Label: hashtree.Label("time"), Tree: hashtree.Leaf(now)},
	})
	sum := state.Digest()
	sig, err := sk.Sign(append(hashtree.DomainSeparator("ic-state-root"), sum[:]...))
	if err != nil {
		t.Fatal(err)
	}
	g1 := bls12381.G1Affine(*sig)
	sigBytes := g1.Bytes()
	cert, err := cbor.Marshal(map[string]any{"tree": state, "signature": sigBytes[:]})
	if err != nil {
		t.Fatal(err)
	}
	return tipFixture{ledger: ledger, root: root, cert: cert, tree: treeBytes}
}

func tipTree(index []byte) hashtree.Node {
	hash := bytes.Repeat([]byte{0xab}, 32)
	return hashtree.Fork{
		LeftTree:  hashtree.Labeled{Label: hashtree.Label("last_block_hash"), Tree: hashtree.Leaf(hash)},
		RightTree: hashtree.Labeled{Label: hashtree.Label("last_block_index"), Tree: hashtree.Leaf(index)},
	}
}

func TestVerifyTip(t *testing.T) {
	fx := newTipFixture(t, tipTree(leb128.AppendUnsignedUint64(nil, 7)))
	got, err := verifyTip(&DataCertificate{Certificate: fx.cert, HashTree: fx.tree}, fx.ledger, fx.root, time.Hour)
	if err != nil || got.index != 7 || got.hash[0] != 0xab {
		t.Fatalf("verifyTip = %+v, %v; want index 7", got, err)
	}
	// The hostile replies that used to panic or allocate without bound are errors now.
	for name, dc := range map[string]*DataCertificate{
		"nil":                    nil,
		"one-byte tree":          {Certificate: fx.cert, HashTree: []byte{0x80}},
		"empty array tree":       {Certificate: fx.cert, HashTree: []byte{0x80}},
		"empty certificate tree": {Certificate: []byte{0xa1, 0x64, 't', 'r', 'e', 'e', 0x80}, HashTree: fx.tree},
		"huge tree":              {Certificate: fx.cert, HashTree: make([]byte, maxHashTree+1)},
		"huge certificate":       {Certificate: make([]byte, maxCertificate+1), HashTree: fx.tree},
		"other tree":             {Certificate: fx.cert, HashTree: mustTree(t, tipTree([]byte{8}))},
	} {
		if _, err := verifyTip(dc, fx.ledger, fx.root, time.Hour); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A 2^64 index does not wrap around to a small one.
	big := leb128.AppendUnsignedUint64(nil, math.MaxUint64)
	big[len(big)-1] |= 0x80
	big = append(big, 1)
	fx = newTipFixture(t, tipTree(big))
	if got, err := verifyTip(&DataCertificate{Certificate: fx.cert, HashTree: fx.tree}, fx.ledger, fx.root, time.Hour); err == nil {
		t.Errorf("index 2^64+ accepted as %d", got.index)
	}
}

func mustTree(t testing.TB, n hashtree.Node) []byte {
	b, err := hashtree.NewHashTree(n).MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzTipCertificate feeds arbitrary certificate and hash-tree bytes to the tip verification:
// nothing may panic, and a tip is returned only for a certificate signed by the root key.
func FuzzTipCertificate(f *testing.F) {
	fx := newTipFixture(f, tipTree(leb128.AppendUnsignedUint64(nil, 7)))
	f.Add(fx.cert, fx.tree)
	f.Add(fx.cert, []byte{0x80})
	f.Add([]byte{0xa0}, []byte{0x83, 0x02, 0x41, 'a', 0x81, 0x00})
	f.Fuzz(func(t *testing.T, cert, tree []byte) {
		dc := &DataCertificate{Certificate: cert, HashTree: tree}
		if _, node, err := decodeTip(dc); err == nil {
			tipOf(node)
		}
		got, err := verifyTip(dc, fx.ledger, fx.root, 100*365*24*time.Hour)
		if err == nil && !bytes.Equal(cert, fx.cert) {
			// Only the fixture's certificate is signed by its key (CBOR admits other spellings
			// of it, so compare what it certifies).
			_, node, _ := decodeTip(dc)
			want, _ := hashtree.Deserialize(fx.tree)
			if node.Reconstruct() != want.Reconstruct() {
				t.Fatalf("tip %+v accepted from an uncertified tree", got)
			}
		}
	})
}

func TestCheckCandidAcceptsLedgerReplies(t *testing.T) {
	cb := idl.PrincipalMethod{Principal: principal.MustDecode("ryjl3-tyaaa-aaaaa-aaaba-cai"), Method: "get_blocks"}
	for name, v := range map[string]any{
		"page": pageOut{LogLength: 9, Blocks: []BlockWithID{{ID: idl.NewNat(uint64(3)), Block: MapValue(
			MapEntry{"phash", BlobValue(make([]byte, 32))},
			MapEntry{"ts", NatValue(1 << 62)},
			MapEntry{"i", Value{Int: func() *idl.Int { i := idl.NewInt(-5); return &i }()}},
			MapEntry{"a", ArrayValue(TextValue("x"), ArrayValue())},
		)}}},
		"transfer": TransferResult{Ok: func() *idl.Nat { n := idl.NewNat(uint64(12)); return &n }()},
		"duplicate": TransferResult{Err: &TransferError{Duplicate: &struct {
			DuplicateOf idl.Nat `ic:"duplicate_of"`
		}{idl.NewNat(uint64(4))}}},
		"certificate": &DataCertificate{Certificate: make([]byte, 3000), HashTree: make([]byte, 200)},
		"account":     Account{Owner: cb.Principal, Subaccount: &[]byte{1, 2}},
	} {
		b, err := candid.Marshal([]any{v})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := checkCandid(b); err != nil {
			t.Errorf("%s: %v (% x)", name, err, b)
		}
	}
	// A page pointing at an archive, encoded as the ICP emulator does (a func-typed callback).
	natT, _ := idl.TypeOf(idl.NewNat(uint64(0)))
	blocksT, _ := idl.TypeOf([]BlockWithID{})
	argsT, _ := idl.TypeOf([]GetBlocksArgs{})
	page := idl.NewRecordType(map[string]idl.Type{"log_length": natT, "blocks": blocksT})
	callbackT := idl.NewFunctionType([]idl.FunctionParameter{{Type: argsT}}, []idl.FunctionParameter{{Type: page}}, []string{"query"})
	archivedT := idl.NewVectorType(idl.NewRecordType(map[string]idl.Type{"args": argsT, "callback": callbackT}))
	resT := idl.NewRecordType(map[string]idl.Type{"log_length": natT, "blocks": blocksT, "archived_blocks": archivedT})
	arch := []any{map[string]any{"args": []any{GetBlocksArgs{Start: idl.NewNat(uint64(0)), Length: idl.NewNat(uint64(2))}}, "callback": &cb}}
	b, err := candid.Encode([]idl.Type{resT}, []any{map[string]any{"log_length": idl.NewNat(uint64(5)), "blocks": []any{}, "archived_blocks": arch}})
	if err != nil {
		t.Fatal(err)
	}
	var archived GetBlocksResult
	if err := decodeCandid(b, []any{&archived}); err != nil || len(archived.ArchivedBlocks) != 1 || archived.ArchivedBlocks[0].Callback.Method.Method != "get_blocks" {
		t.Fatalf("archived page: %+v, %v", archived, err)
	}
	// The real page shape of a big honest reply: 2,000 blocks stay inside every bound.
	var blocks []BlockWithID
	for i := range 2000 {
		blocks = append(blocks, BlockWithID{ID: idl.NewNat(uint64(i)), Block: MapValue(
			MapEntry{"btype", TextValue("1xfer")},
			MapEntry{"phash", BlobValue(make([]byte, 32))},
			MapEntry{"ts", NatValue(1 << 62)},
			MapEntry{"tx", MapValue(
				MapEntry{"amt", NatValue(5)},
				MapEntry{"from", ArrayValue(BlobValue(make([]byte, 29)))},
				MapEntry{"to", ArrayValue(BlobValue(make([]byte, 29)), BlobValue(make([]byte, 32)))},
				MapEntry{"memo", BlobValue(make([]byte, 32))},
				MapEntry{"created_at_time", NatValue(1 << 62)},
			)},
		)})
	}
	b, err = candid.Marshal([]any{pageOut{LogLength: 2000, Blocks: blocks}})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCandid(b); err != nil {
		t.Fatalf("2,000-block page (%d bytes): %v", len(b), err)
	}
	var res GetBlocksResult
	if err := decodeCandid(b, []any{&res}); err != nil || len(res.Blocks) != 2000 {
		t.Fatalf("2,000-block page decoded to %d blocks, %v", len(res.Blocks), err)
	}
}

// hostile builds a Candid message: header, the type table entries, one argument of type arg,
// then the value bytes.
func hostile(types [][]byte, arg byte, value ...[]byte) []byte {
	b := []byte("DIDL")
	b = append(b, byte(len(types)))
	for _, t := range types {
		b = append(b, t...)
	}
	b = append(b, 1, arg)
	for _, v := range value {
		b = append(b, v...)
	}
	return b
}

func lebN(n uint64) []byte { return leb128.AppendUnsignedUint64(nil, n) }

func TestCheckCandidRefusesHostileReplies(t *testing.T) {
	corpus, err := readCorpus("testdata/fuzz/FuzzBlocksReply")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		// A future type whose skipped bytes are declared as 2^40 (agent-go: make([]byte, 2^40)).
		"future type skip": append([]byte("DIDL\x01\x60"), append(lebN(1<<40), 0, 0)...),
		// A principal declared 2^40 bytes long.
		"principal length": hostile(nil, 0x68, []byte{1}, lebN(1<<40)),
		// A func annotation declared 2^40 bytes long.
		"annotation length": hostile([][]byte{append([]byte{0x6a, 0, 0}, lebN(1<<40)...)}, 0),
		// A record that contains itself has no finite value: agent-go recursed until the stack
		// ran out.
		"self record": hostile([][]byte{{0x6c, 1, 0, 0}}, 0),
		// opt opt opt ... deeper than maxCandidDepth.
		"deep opt": hostile([][]byte{{0x6e, 0}, {0x6c, 1, 0, 0}}, 0, bytes.Repeat([]byte{1}, 200)),
		// A nat of a megabyte (agent-go decodes LEB128 in quadratic time).
		"long nat": hostile(nil, 0x7d, bytes.Repeat([]byte{0xff}, 1<<20), []byte{0}),
		// vec variant {null} of a million one-byte elements: ~80 MB in agent-go's []any and
		// *Variant values from 1 MB.
		"wide vec": hostile([][]byte{{0x6d, 1}, {0x6b, 1, 0, 0x7f}}, 0, lebN(1<<20), make([]byte, 1<<20)),
		// A type table of 100,000 entries.
		"type table": append([]byte("DIDL"), lebN(100000)...),
		// Table references outside the table, unknown opcodes, opt-only cycles.
		"bad index":   hostile([][]byte{{0x6d, 5}}, 0, []byte{0}),
		"bad opcode":  hostile([][]byte{{0x6c, 1, 0, 0x50}}, 0),
		"opt cycle":   hostile([][]byte{{0x6e, 1}, {0x6d, 0}}, 0, []byte{0}),
		"service":     hostile([][]byte{{0x69, 0}}, 0),
		"too big":     append([]byte("DIDL"), make([]byte, MaxCandidReply)...),
		"empty value": hostile(nil, 0x6f),
	}
	for i, c := range corpus {
		cases["corpus "+string(rune('0'+i))] = c
	}
	for name, b := range cases {
		if err := checkCandid(b); !errors.Is(err, errCandid) {
			t.Errorf("%s: checkCandid = %v; want a refusal", name, err)
		}
		var res GetBlocksResult
		if err := decodeCandid(b, []any{&res}); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestCandidDecodedMemoryIsBounded measures what agent-go allocates for the most expensive
// replies checkCandid still accepts, of each shape: the total (garbage included) stays within twice
// maxCandidDecoded (the budget's estimate is meant to be of the same order as the truth).
func TestCandidDecodedMemoryIsBounded(t *testing.T) {
	if testing.Short() || raceDetector {
		t.Skip("allocates a few hundred MB (more under the race detector)")
	}
	largest := func(build func(n int) []byte) []byte {
		lo, hi := 1, MaxCandidReply
		for lo < hi { // the largest n that checkCandid accepts
			mid := (lo + hi + 1) / 2
			if checkCandid(build(mid)) == nil {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		return build(lo)
	}
	shapes := map[string]func(n int) []byte{
		"vec null": func(n int) []byte { return hostile([][]byte{{0x6d, 0x7f}}, 0, lebN(uint64(n)), make([]byte, n)) },
		"blob":     func(n int) []byte { return hostile([][]byte{{0x6d, 0x7b}}, 0, lebN(uint64(n)), make([]byte, n)) },
		"vec variant": func(n int) []byte {
			return hostile([][]byte{{0x6d, 1}, {0x6b, 1, 0, 0x7f}}, 0, lebN(uint64(n)), make([]byte, n))
		},
		"vec record bool": func(n int) []byte {
			return hostile([][]byte{{0x6d, 1}, {0x6c, 1, 0, 0x7e}}, 0, lebN(uint64(n)), make([]byte, n))
		},
		"vec nat":  func(n int) []byte { return hostile([][]byte{{0x6d, 0x7d}}, 0, lebN(uint64(n)), make([]byte, n)) },
		"vec text": func(n int) []byte { return hostile([][]byte{{0x6d, 0x71}}, 0, lebN(uint64(n)), make([]byte, n)) },
		"vec opt record": func(n int) []byte {
			return hostile([][]byte{{0x6d, 1}, {0x6e, 2}, {0x6c, 0}}, 0, lebN(uint64(n)), bytes.Repeat([]byte{1}, n))
		},
	}
	for name, build := range shapes {
		b := largest(build)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var res GetBlocksResult
		decodeCandid(b, []any{&res})
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%-16s %8d bytes in, %5d MiB allocated", name, len(b), alloc>>20)
		if alloc > 2*maxCandidDecoded {
			t.Errorf("%s: %d bytes of Candid allocated %d MiB", name, len(b), alloc>>20)
		}
	}
}

// readCorpus reads the []byte inputs of a go-fuzz corpus directory.
func readCorpus(dir string) ([][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if s, ok := strings.CutPrefix(line, "[]byte("); ok {
				b, err := strconv.Unquote(strings.TrimSuffix(s, ")"))
				if err != nil {
					return nil, fmt.Errorf("%s: %v", e.Name(), err)
				}
				out = append(out, []byte(b))
			}
		}
	}
	return out, nil
}
