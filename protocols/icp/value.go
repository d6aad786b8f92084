package icp

import (
	"crypto/sha256"
	"errors"
	"math/big"
	"sort"

	"github.com/aviate-labs/agent-go/candid/idl"
)

// ErrValue is returned for a Value with no (or more than one) arm set.
var ErrValue = errors.New("malformed ICRC-3 value")

// Hash returns the ICRC-3 representation-independent hash of v (ICRC-3 HASHINGVALUES.md).
func (v *Value) Hash() ([32]byte, error) {
	arms := 0
	for _, set := range []bool{v.Blob != nil, v.Text != nil, v.Nat != nil, v.Int != nil, v.Array != nil, v.Map != nil} {
		if set {
			arms++
		}
	}
	if arms != 1 {
		return [32]byte{}, ErrValue
	}
	switch {
	case v.Blob != nil:
		return sha256.Sum256(*v.Blob), nil
	case v.Text != nil:
		return sha256.Sum256([]byte(*v.Text)), nil
	case v.Nat != nil:
		return sha256.Sum256(uleb(v.Nat.BigInt())), nil
	case v.Int != nil:
		return sha256.Sum256(sleb(v.Int.BigInt())), nil
	case v.Array != nil:
		h := sha256.New()
		for i := range *v.Array {
			e, err := (*v.Array)[i].Hash()
			if err != nil {
				return [32]byte{}, err
			}
			h.Write(e[:])
		}
		var out [32]byte
		h.Sum(out[:0])
		return out, nil
	}
	rows := make([][]byte, 0, len(*v.Map))
	for i := range *v.Map {
		e := &(*v.Map)[i]
		k := sha256.Sum256([]byte(e.Key))
		val, err := e.Value.Hash()
		if err != nil {
			return [32]byte{}, err
		}
		rows = append(rows, append(k[:], val[:]...))
	}
	sort.Slice(rows, func(i, j int) bool { return string(rows[i]) < string(rows[j]) })
	h := sha256.New()
	for _, r := range rows {
		h.Write(r)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out, nil
}

func uleb(n *big.Int) []byte {
	n = new(big.Int).Set(n)
	var out []byte
	for {
		b := byte(new(big.Int).And(n, big.NewInt(0x7f)).Uint64())
		n.Rsh(n, 7)
		if n.Sign() == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func sleb(n *big.Int) []byte {
	n = new(big.Int).Set(n)
	var out []byte
	for {
		b := byte(new(big.Int).And(n, big.NewInt(0x7f)).Uint64())
		n.Rsh(n, 7) // arithmetic shift for negatives
		signBit := b&0x40 != 0
		if (n.Sign() == 0 && !signBit) || (n.Cmp(big.NewInt(-1)) == 0 && signBit) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// Convenience constructors.

// NatValue returns a Nat value.
func NatValue(n uint64) Value { v := idl.NewNat(n); return Value{Nat: &v} }

// BlobValue returns a Blob value.
func BlobValue(b []byte) Value { return Value{Blob: &b} }

// TextValue returns a Text value.
func TextValue(s string) Value { return Value{Text: &s} }

// MapValue returns a Map value.
func MapValue(entries ...MapEntry) Value { return Value{Map: &entries} }

// ArrayValue returns an Array value.
func ArrayValue(items ...Value) Value { return Value{Array: &items} }

// Field returns the value of key in a Map value, or nil.
func (v *Value) Field(key string) *Value {
	if v == nil || v.Map == nil {
		return nil
	}
	for i := range *v.Map {
		if (*v.Map)[i].Key == key {
			return &(*v.Map)[i].Value
		}
	}
	return nil
}
