package icp

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/aviate-labs/agent-go"
	"github.com/aviate-labs/agent-go/candid"
	"github.com/aviate-labs/agent-go/certification"
	"github.com/aviate-labs/agent-go/certification/hashtree"
	"github.com/aviate-labs/agent-go/leb128"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/fxamacker/cbor/v2"
)

// Caps on the two parts of an ICRC-3 tip certificate. A replica's certificate (with its subnet
// delegation) is a few KiB; the ledger's hash tree names two leaves.
const (
	maxCertificate = 256 << 10
	maxHashTree    = 64 << 10
)

// recoverAgent turns a panic inside agent-go into an error. agent-go panics on replies it does
// not expect (an unknown query status, a reject code of an odd width, an empty hash-tree node);
// a replica's reply must never take the node down.
func recoverAgent(what string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: %s: the replica's reply broke the ICP agent: %v", ErrMalformed, what, p)
	}
}

// boundedQuery is agent-go's QueryWithContext with the Candid reply checked by checkCandid
// before it is decoded, and agent-go's panics returned as errors.
func (c *Client) boundedQuery(ctx context.Context, canister principal.Principal, method string, in, out []any) (err error) {
	defer recoverAgent(method, &err)
	req, err := agent.CreateAPIRequest(c.a, candid.Marshal, decodeCandid, agent.RequestTypeQuery, canister, canister, method, in)
	if err != nil {
		return err
	}
	return req.QueryWithContext(ctx, out, false)
}

// boundedCall is agent-go's CallWithContext (an update call, waited for) with the same bounds.
func (c *Client) boundedCall(ctx context.Context, canister principal.Principal, method string, in, out []any) (err error) {
	defer recoverAgent(method, &err)
	req, err := agent.CreateAPIRequest(c.a, candid.Marshal, decodeCandid, agent.RequestTypeCall, canister, canister, method, in)
	if err != nil {
		return err
	}
	return req.CallAndWaitWithContext(ctx, out)
}

// verifyTip checks an icrc3_get_tip_certificate reply: the certificate is signed by the root
// key (directly or through a subnet delegation), certifies the hash tree as ledger's certified
// data, is at most maxAge old, and the tree names the tip. Sizes are capped before decoding and
// agent-go's panics are returned as errors.
func verifyTip(dc *DataCertificate, ledger principal.Principal, root []byte, maxAge time.Duration) (t tip, err error) {
	defer recoverAgent("tip certificate", &err)
	cert, node, err := decodeTip(dc)
	if err != nil {
		return tip{}, err
	}
	digest := node.Reconstruct()
	if err := certification.VerifyCertifiedData(cert, ledger, root, digest[:]); err != nil {
		return tip{}, fmt.Errorf("%w: %v", ErrUncertified, err)
	}
	if err := cert.VerifyTime(maxAge); err != nil {
		return tip{}, fmt.Errorf("%w: %v", ErrUncertified, err)
	}
	return tipOf(node)
}

// decodeTip decodes a tip certificate's CBOR certificate and hash tree within their caps.
func decodeTip(dc *DataCertificate) (cert certification.Certificate, node hashtree.Node, err error) {
	defer recoverAgent("tip certificate", &err)
	if dc == nil {
		return cert, nil, fmt.Errorf("%w: the ledger returned no tip certificate", ErrUncertified)
	}
	if len(dc.Certificate) > maxCertificate || len(dc.HashTree) > maxHashTree {
		return cert, nil, fmt.Errorf("%w: tip certificate of %d bytes and hash tree of %d (caps %d and %d)",
			ErrMalformed, len(dc.Certificate), len(dc.HashTree), maxCertificate, maxHashTree)
	}
	if err := cbor.Unmarshal(dc.Certificate, &cert); err != nil {
		return cert, nil, fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}
	if cert.Tree.Root == nil {
		return cert, nil, fmt.Errorf("%w: certificate without a tree", ErrMalformed)
	}
	if node, err = hashtree.Deserialize(dc.HashTree); err != nil {
		return cert, nil, fmt.Errorf("%w: hash tree: %v", ErrMalformed, err)
	}
	if node == nil {
		return cert, nil, fmt.Errorf("%w: empty hash tree", ErrMalformed)
	}
	return cert, node, nil
}

// tipOf reads the certified tip (last_block_index and last_block_hash, or a legacy ledger's
// tip_hash and 8-byte index) from a verified hash tree.
func tipOf(node hashtree.Node) (t tip, err error) {
	defer recoverAgent("tip certificate", &err)
	if h, err := hashtree.Lookup(node, hashtree.Label("last_block_hash")); err == nil && len(h) == 32 {
		raw, err := hashtree.Lookup(node, hashtree.Label("last_block_index"))
		if err != nil {
			return tip{}, fmt.Errorf("%w: tip has no last_block_index", ErrMalformed)
		}
		if len(raw) > 10 {
			return tip{}, fmt.Errorf("%w: last_block_index of %d bytes", ErrMalformed, len(raw))
		}
		r := bytes.NewReader(raw)
		idx, err := leb128.DecodeUnsigned(r)
		if err != nil || r.Len() != 0 || !idx.IsUint64() {
			return tip{}, fmt.Errorf("%w: last_block_index %x is not a 64-bit LEB128 number", ErrMalformed, raw)
		}
		return tip{index: idx.Uint64(), hash: [32]byte(h)}, nil
	}
	if h, err := hashtree.Lookup(node, hashtree.Label("tip_hash")); err == nil && len(h) == 32 {
		// Older ledgers: tip_hash and an 8-byte big-endian index.
		raw, err := hashtree.Lookup(node, hashtree.Label("last_block_index"))
		if err != nil || len(raw) != 8 {
			return tip{}, fmt.Errorf("%w: legacy tip without an 8-byte index", ErrMalformed)
		}
		return tip{index: new(big.Int).SetBytes(raw).Uint64(), hash: [32]byte(h)}, nil
	}
	return tip{}, fmt.Errorf("%w: the certified tree names no tip", ErrBlockNotFound)
}
