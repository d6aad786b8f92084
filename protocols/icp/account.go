package icp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/aviate-labs/agent-go/principal"
)

// AccountID is an ICP ledger account identifier: a big-endian CRC32 of h followed by h =
// SHA-224("\x0Aaccount-id" ‖ principal ‖ 32-byte subaccount). Its hex form is what wallets and
// exchanges show; the ICP ledger's blocks name accounts by it.
type AccountID [32]byte

// accountIDDomain is the domain separator of the account identifier hash.
const accountIDDomain = "\x0Aaccount-id"

// AccountIDOf returns the account identifier of owner's subaccount (nil = the default account,
// 32 zero bytes). A subaccount that is not 32 bytes is hashed as given, as the ledger would reject it.
func AccountIDOf(owner principal.Principal, subaccount []byte) AccountID {
	if subaccount == nil {
		subaccount = make([]byte, 32)
	}
	h := sha256.New224()
	h.Write([]byte(accountIDDomain))
	h.Write(owner.Raw)
	h.Write(subaccount)
	var id AccountID
	h.Sum(id[4:4])
	binary.BigEndian.PutUint32(id[:4], crc32.ChecksumIEEE(id[4:]))
	return id
}

// ID returns the account identifier of an ICRC-1 account.
func (a Account) ID() AccountID {
	var sub []byte
	if a.Subaccount != nil {
		sub = *a.Subaccount
	}
	return AccountIDOf(a.Owner, sub)
}

// String returns the 64-character lower-case hex form.
func (id AccountID) String() string { return hex.EncodeToString(id[:]) }

// Hash returns the 28-byte SHA-224 part, without the checksum.
func (id AccountID) Hash() []byte { return append([]byte(nil), id[4:]...) }

// ErrAccountID is returned for an account identifier that is malformed or fails its checksum.
var ErrAccountID = errors.New("not an ICP account identifier")

// ParseAccountID reads the hex form (64 hex digits, either case), checking the CRC32.
func ParseAccountID(s string) (AccountID, error) {
	s = strings.TrimSpace(s)
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 32 {
		return AccountID{}, fmt.Errorf("%w: %q is not 64 hex digits", ErrAccountID, s)
	}
	return AccountIDFromBytes(raw)
}

// AccountIDFromBytes reads an account identifier as the ICP ledger's protobuf carries it: the
// 32-byte form (checksum checked) or the bare 28-byte hash (checksum computed).
func AccountIDFromBytes(b []byte) (AccountID, error) {
	var id AccountID
	switch len(b) {
	case 32:
		copy(id[:], b)
		if binary.BigEndian.Uint32(id[:4]) != crc32.ChecksumIEEE(id[4:]) {
			return AccountID{}, fmt.Errorf("%w: checksum mismatch in %x", ErrAccountID, b)
		}
	case 28:
		copy(id[4:], b)
		binary.BigEndian.PutUint32(id[:4], crc32.ChecksumIEEE(id[4:]))
	default:
		return AccountID{}, fmt.Errorf("%w: %d bytes, want 32 (or 28 without checksum)", ErrAccountID, len(b))
	}
	return id, nil
}

// Equal reports whether two account identifiers are the same.
func (id AccountID) Equal(o AccountID) bool { return bytes.Equal(id[:], o[:]) }
