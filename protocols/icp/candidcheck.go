package icp

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aviate-labs/agent-go/candid"
	"github.com/aviate-labs/agent-go/candid/idl"
)

// Bounds on a Candid reply, checked before agent-go's decoder sees it. agent-go allocates from
// lengths the message declares (a principal, an annotation, a skipped future type), decodes
// LEB128 numbers in quadratic time, and builds a []any slot per vector element (16 bytes per
// blob byte), so a few hostile bytes could otherwise ask it for gigabytes. A ledger's real
// replies (a page of ICRC-3 blocks, a tip certificate, a transfer result) are far inside them.
const (
	// MaxCandidReply caps the Candid bytes of one reply. The Internet Computer itself caps a
	// canister's reply at a few MiB; a page of 2,000 ICRC-3 blocks is well under 1 MiB.
	MaxCandidReply = 4 << 20
	// maxCandidTypes caps the entries of a reply's type table (ICRC-3 replies use about 15).
	maxCandidTypes = 256
	// maxCandidFields caps the fields of one record or variant type (and a func's parameters).
	maxCandidFields = 256
	// maxCandidArgs caps the values of one reply (a ledger method returns one).
	maxCandidArgs = 16
	// maxCandidDepth caps how deeply values nest (an ICRC-3 block page nests about 14 deep).
	maxCandidDepth = 64
	// maxCandidLEB caps the encoded length of a nat or int value: 64 bytes hold 448 bits.
	maxCandidLEB = 64
	// maxCandidDecoded caps agent-go's estimated memory for the decoded reply (see cost below);
	// an honest 2,000-block page costs about 17 MiB by that estimate.
	maxCandidDecoded = 64 << 20
	// maxPrincipal is the longest principal the Internet Computer issues.
	maxPrincipal = 29
)

// Estimated bytes agent-go allocates per decoded item: a vector's []any slot, a record's map, a
// variant's *idl.Variant, a number's big.Int, a text's or a principal's header.
const (
	costSlot      = 16
	costRecord    = 320
	costVariant   = 144
	costNumber    = 96
	costReference = 96
)

// errCandid is wrapped by every refusal of checkCandid.
var errCandid = errors.New("malformed Candid reply")

// Candid type opcodes (the Candid specification's binary format).
const (
	opNull      = -1
	opBool      = -2
	opNat       = -3
	opInt       = -4
	opNat8      = -5
	opNat64     = -8
	opInt8      = -9
	opInt64     = -12
	opFloat32   = -13
	opFloat64   = -14
	opText      = -15
	opReserved  = -16
	opEmpty     = -17
	opOpt       = -18
	opVec       = -19
	opRecord    = -20
	opVariant   = -21
	opFunc      = -22
	opPrincipal = -24
)

// candidType is one entry of a checked type table.
type candidType struct {
	op     int64
	elem   int64   // opt, vec: the element type
	fields []int64 // record, variant: the field types in wire order
}

// candidReader walks a Candid message the way agent-go reads it, with every count checked
// against the bytes left and every decoded item charged to a memory budget.
type candidReader struct {
	b      []byte
	off    int
	types  []candidType
	budget int64
}

func (r *candidReader) fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", errCandid, fmt.Sprintf(format, args...), r.off)
}

func (r *candidReader) left() int { return len(r.b) - r.off }

func (r *candidReader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.fail("truncated")
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *candidReader) skip(n int) error {
	if n < 0 || n > r.left() {
		return r.fail("%d bytes declared, %d left", n, r.left())
	}
	r.off += n
	return nil
}

// uleb reads an unsigned LEB128 number that must fit in 63 bits.
func (r *candidReader) uleb() (int64, error) {
	var v uint64
	for shift := 0; ; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 63 && c > 0 || shift > 63 {
			return 0, r.fail("number too large")
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	if v > 1<<62 {
		return 0, r.fail("number too large")
	}
	return int64(v), nil
}

// sleb reads a signed LEB128 number of at most 9 bytes (a type index or opcode).
func (r *candidReader) sleb() (int64, error) {
	var v int64
	shift := 0
	for {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift >= 63 {
			return 0, r.fail("type reference too large")
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c < 0x80 {
			if c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
}

// count reads a length that cannot exceed the bytes left (agent-go's own rule for vectors and
// texts, applied here to every length).
func (r *candidReader) count(limit int64) (int, error) {
	n, err := r.uleb()
	if err != nil {
		return 0, err
	}
	if n > int64(r.left()) || n > limit {
		return 0, r.fail("length %d exceeds the %d bytes left or the limit %d", n, r.left(), limit)
	}
	return int(n), nil
}

// numberBytes skips a LEB128 value of at most maxCandidLEB bytes.
func (r *candidReader) numberBytes() error {
	for i := 0; i < maxCandidLEB; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c < 0x80 {
			return nil
		}
	}
	return r.fail("number longer than %d bytes", maxCandidLEB)
}

// fixed skips a fixed-width number; wider than a byte, agent-go boxes it on the heap.
func (r *candidReader) fixed(n int) error {
	if n > 1 {
		if err := r.charge(8); err != nil {
			return err
		}
	}
	return r.skip(n)
}

func (r *candidReader) charge(n int64) error {
	r.budget -= n
	if r.budget < 0 {
		return r.fail("reply would decode to more than %d MiB", maxCandidDecoded>>20)
	}
	return nil
}

// typeRef reads a reference to a primitive type or to an entry of a table of n entries.
func (r *candidReader) typeRef(n int) (int64, error) {
	t, err := r.sleb()
	if err != nil {
		return 0, err
	}
	if t >= 0 {
		if t >= int64(n) {
			return 0, r.fail("type index %d outside a table of %d", t, n)
		}
		return t, nil
	}
	if (t <= opNull && t >= opEmpty) || t == opPrincipal {
		return t, nil
	}
	return 0, r.fail("type %d is not a primitive type", t)
}

func (r *candidReader) typeTable() error {
	n, err := r.count(maxCandidTypes)
	if err != nil {
		return err
	}
	// Every reference is checked against the declared size (forward references are legal).
	r.types = make([]candidType, 0, n)
	for i := 0; i < n; i++ {
		op, err := r.sleb()
		if err != nil {
			return err
		}
		t := candidType{op: op}
		switch op {
		case opOpt, opVec:
			if t.elem, err = r.typeRef(n); err != nil {
				return err
			}
		case opRecord, opVariant:
			k, err := r.count(maxCandidFields)
			if err != nil {
				return err
			}
			var prev int64 = -1
			for j := 0; j < k; j++ {
				id, err := r.uleb()
				if err != nil {
					return err
				}
				if id > 1<<32-1 || id <= prev {
					return r.fail("field id %d out of range or out of order", id)
				}
				prev = id
				ft, err := r.typeRef(n)
				if err != nil {
					return err
				}
				t.fields = append(t.fields, ft)
			}
		case opFunc:
			for _, what := range []string{"arguments", "results"} {
				k, err := r.count(maxCandidFields)
				if err != nil {
					return fmt.Errorf("func %s: %w", what, err)
				}
				for j := 0; j < k; j++ {
					if _, err := r.typeRef(n); err != nil {
						return err
					}
				}
			}
			k, err := r.count(maxCandidFields)
			if err != nil {
				return err
			}
			if err := r.skip(k); err != nil {
				return err
			}
		default:
			// Services and future types never appear in a ledger's replies.
			return r.fail("type opcode %d is not accepted", op)
		}
		r.types = append(r.types, t)
	}
	// An opt or vec must not refer (through opts and vecs only) back to itself: agent-go
	// cannot resolve such a table.
	for i := range r.types {
		seen := 0
		for j := int64(i); j >= 0 && (r.types[j].op == opOpt || r.types[j].op == opVec); j = r.types[j].elem {
			if seen++; seen > len(r.types) {
				return r.fail("type %d refers to itself through opt and vec only", i)
			}
		}
	}
	return nil
}

func (r *candidReader) value(t int64, depth int) error {
	if depth > maxCandidDepth {
		return r.fail("values nest deeper than %d", maxCandidDepth)
	}
	switch {
	case t == opNull || t == opReserved:
		return nil
	case t == opEmpty:
		return r.fail("a value of type empty")
	case t == opBool:
		c, err := r.byte()
		if err == nil && c > 1 {
			err = r.fail("bool %d", c)
		}
		return err
	case t == opNat || t == opInt:
		if err := r.charge(costNumber); err != nil {
			return err
		}
		return r.numberBytes()
	case t <= opNat8 && t >= opNat64:
		return r.fixed(1 << (opNat8 - t))
	case t <= opInt8 && t >= opInt64:
		return r.fixed(1 << (opInt8 - t))
	case t == opFloat32:
		return r.skip(4)
	case t == opFloat64:
		return r.skip(8)
	case t == opText:
		n, err := r.count(MaxCandidReply)
		if err != nil {
			return err
		}
		if err := r.charge(costReference + int64(n)); err != nil {
			return err
		}
		if !utf8.Valid(r.b[r.off : r.off+n]) {
			return r.fail("text is not UTF-8")
		}
		return r.skip(n)
	case t == opPrincipal:
		return r.principal()
	case t < 0:
		return r.fail("type %d", t)
	}
	typ := r.types[t]
	switch typ.op {
	case opOpt:
		c, err := r.byte()
		if err != nil {
			return err
		}
		switch c {
		case 0:
			return nil
		case 1:
			return r.value(typ.elem, depth+1)
		}
		return r.fail("opt tag %d", c)
	case opVec:
		n, err := r.count(MaxCandidReply)
		if err != nil {
			return err
		}
		if err := r.charge(costSlot * int64(n)); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := r.value(typ.elem, depth+1); err != nil {
				return err
			}
		}
		return nil
	case opRecord:
		if err := r.charge(costRecord + costSlot*int64(len(typ.fields))); err != nil {
			return err
		}
		for _, f := range typ.fields {
			if err := r.value(f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case opVariant:
		if err := r.charge(costVariant); err != nil {
			return err
		}
		i, err := r.uleb()
		if err != nil {
			return err
		}
		if i >= int64(len(typ.fields)) {
			return r.fail("variant index %d of %d", i, len(typ.fields))
		}
		return r.value(typ.fields[i], depth+1)
	case opFunc:
		if err := r.charge(costReference); err != nil {
			return err
		}
		for range 2 {
			c, err := r.byte()
			if err != nil {
				return err
			}
			if c != 1 {
				return r.fail("func reference tag %d", c)
			}
		}
		n, err := r.count(maxPrincipal)
		if err != nil {
			return err
		}
		if err := r.skip(n); err != nil {
			return err
		}
		if n, err = r.count(MaxCandidReply); err != nil {
			return err
		}
		if err := r.charge(int64(n)); err != nil {
			return err
		}
		return r.skip(n)
	}
	return r.fail("type %d", t)
}

func (r *candidReader) principal() error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	if c != 1 {
		return r.fail("principal tag %d", c)
	}
	n, err := r.count(maxPrincipal)
	if err != nil {
		return err
	}
	if err := r.charge(costReference + int64(n)); err != nil {
		return err
	}
	return r.skip(n)
}

// checkCandid walks a Candid message's header, type table and values, and refuses it unless
// agent-go can decode it within the bounds above: every declared length fits in the bytes left
// and under its cap, every type reference resolves, values nest at most maxCandidDepth deep,
// and the decoded form is estimated at most maxCandidDecoded bytes.
func checkCandid(b []byte) error {
	if len(b) > MaxCandidReply {
		return fmt.Errorf("%w: %d bytes, more than %d", errCandid, len(b), MaxCandidReply)
	}
	if len(b) < 4 || string(b[:4]) != "DIDL" {
		return fmt.Errorf("%w: no DIDL header", errCandid)
	}
	r := &candidReader{b: b, off: 4, budget: maxCandidDecoded}
	if err := r.typeTable(); err != nil {
		return err
	}
	n, err := r.count(maxCandidArgs)
	if err != nil {
		return err
	}
	args := make([]int64, n)
	for i := range args {
		if args[i], err = r.typeRef(len(r.types)); err != nil {
			return err
		}
	}
	for _, t := range args {
		if err := r.value(t, 0); err != nil {
			return err
		}
	}
	return nil
}

// decodeCandid is candid.Unmarshal behind checkCandid, with agent-go's panics turned into
// errors. agent-go's own error for a value that does not fit the Go type is not passed on: it
// prints the decoded value and its (possibly recursive) type lazily, which for ICRC-3's
// recursive Value would never end.
func decodeCandid(b []byte, out []any) (err error) {
	if err := checkCandid(b); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: the Candid decoder failed: %v", errCandid, p)
		}
	}()
	if err := candid.Unmarshal(b, out); err != nil {
		var ue *idl.UnmarshalGoError
		var uv idl.UnmarshalGoError
		if errors.As(err, &ue) || errors.As(err, &uv) {
			return fmt.Errorf("%w: a value does not have the expected type", errCandid)
		}
		msg := err.Error()
		if len(msg) > 256 {
			msg = msg[:256] + "…"
		}
		return fmt.Errorf("%w: %s", errCandid, strings.ToValidUTF8(msg, "?"))
	}
	return nil
}
