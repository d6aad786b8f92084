// Package icp is califusiond's Internet Computer client, on aviate-labs/agent-go: ICRC-1
// transfers and balances, and verification of a payment against the ledger's certified ICRC-3
// tip (BLS certificate, then the phash chain back to the block). Wire facts:
// shared/specs/ICP.md; tests run against protocols/icp/icptest.
package icp

import (
	"github.com/aviate-labs/agent-go/candid/idl"
	"github.com/aviate-labs/agent-go/principal"
)

// Account is an ICRC-1 account.
type Account struct {
	Owner      principal.Principal `ic:"owner"`
	Subaccount *[]byte             `ic:"subaccount"`
}

// TransferArg is icrc1_transfer's argument.
type TransferArg struct {
	FromSubaccount *[]byte  `ic:"from_subaccount"`
	To             Account  `ic:"to"`
	Amount         idl.Nat  `ic:"amount"`
	Fee            *idl.Nat `ic:"fee"`
	Memo           *[]byte  `ic:"memo"`
	CreatedAtTime  *uint64  `ic:"created_at_time"`
}

// TransferError is icrc1_transfer's error variant.
type TransferError struct {
	BadFee *struct {
		ExpectedFee idl.Nat `ic:"expected_fee"`
	} `ic:"BadFee,variant"`
	BadBurn *struct {
		MinBurnAmount idl.Nat `ic:"min_burn_amount"`
	} `ic:"BadBurn,variant"`
	InsufficientFunds *struct {
		Balance idl.Nat `ic:"balance"`
	} `ic:"InsufficientFunds,variant"`
	TooOld          *idl.Null `ic:"TooOld,variant"`
	CreatedInFuture *struct {
		LedgerTime uint64 `ic:"ledger_time"`
	} `ic:"CreatedInFuture,variant"`
	Duplicate *struct {
		DuplicateOf idl.Nat `ic:"duplicate_of"`
	} `ic:"Duplicate,variant"`
	TemporarilyUnavailable *idl.Null `ic:"TemporarilyUnavailable,variant"`
	GenericError           *struct {
		ErrorCode idl.Nat `ic:"error_code"`
		Message   string  `ic:"message"`
	} `ic:"GenericError,variant"`
}

// TransferResult is icrc1_transfer's result.
type TransferResult struct {
	Ok  *idl.Nat       `ic:"Ok,variant"`
	Err *TransferError `ic:"Err,variant"`
}

// Value is an ICRC-3 generic value.
type Value struct {
	Blob  *[]byte     `ic:"Blob,variant"`
	Text  *string     `ic:"Text,variant"`
	Nat   *idl.Nat    `ic:"Nat,variant"`
	Int   *idl.Int    `ic:"Int,variant"`
	Array *[]Value    `ic:"Array,variant"`
	Map   *[]MapEntry `ic:"Map,variant"`
}

// MapEntry is one entry of a Value map.
type MapEntry struct {
	Key   string `ic:"0,tuple"`
	Value Value  `ic:"1,tuple"`
}

// GetBlocksArgs is one range of icrc3_get_blocks.
type GetBlocksArgs struct {
	Start  idl.Nat `ic:"start"`
	Length idl.Nat `ic:"length"`
}

// BlockWithID is a block and its index.
type BlockWithID struct {
	ID    idl.Nat `ic:"id"`
	Block Value   `ic:"block"`
}

// ArchivedBlocks points at an archive canister holding older blocks.
type ArchivedBlocks struct {
	Args     []GetBlocksArgs `ic:"args"`
	Callback idl.Function    `ic:"callback"`
}

// GetBlocksResult is icrc3_get_blocks's result.
type GetBlocksResult struct {
	LogLength      idl.Nat          `ic:"log_length"`
	Blocks         []BlockWithID    `ic:"blocks"`
	ArchivedBlocks []ArchivedBlocks `ic:"archived_blocks"`
}

// DataCertificate is icrc3_get_tip_certificate's result.
type DataCertificate struct {
	Certificate []byte `ic:"certificate"`
	HashTree    []byte `ic:"hash_tree"`
}
