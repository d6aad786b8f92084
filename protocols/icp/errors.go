package icp

import (
	"errors"
	"fmt"
	"math/big"
)

// Errors of VerifyPayment; each names the check that failed.
var (
	ErrBlockNotFound = errors.New("payment block is not on the certified ledger yet")
	ErrNotTransfer   = errors.New("payment block is not a plain transfer")
	ErrWrongPayee    = errors.New("payment went to another account")
	ErrWrongPayer    = errors.New("payment came from another account")
	ErrWrongMemo     = errors.New("payment memo does not bind this model and trainer")
	ErrInsufficient  = errors.New("payment is below the price")
	ErrUncertified   = errors.New("ledger tip is not certified by the root key")
	ErrChainBroken   = errors.New("ledger blocks do not chain to the certified tip")
	ErrMalformed     = errors.New("malformed ledger reply")

	ErrPaymentTooOld  = errors.New("payment block is older than this coordinator accepts (icp.max_payment_age): pay again")
	ErrPaymentTooDeep = errors.New("payment block lies too far behind the ledger tip for this coordinator (icp.max_payment_depth): pay again")
	ErrWalkLimit      = errors.New("verifying the payment needs more ledger blocks than one request may fetch (icp.max_verify_blocks): retry, verification resumes where it stopped")
)

// Errors of Transfer, one per TransferError variant.
var (
	ErrBadFee                 = errors.New("ledger refused the fee")
	ErrBadBurn                = errors.New("burn amount too small")
	ErrInsufficientFunds      = errors.New("insufficient funds")
	ErrTooOld                 = errors.New("transfer created too long ago")
	ErrCreatedInFuture        = errors.New("transfer created in the future: check this machine's clock")
	ErrDuplicate              = errors.New("transfer already executed")
	ErrTemporarilyUnavailable = errors.New("ledger temporarily unavailable")
	ErrGeneric                = errors.New("ledger error")
)

// TransferFailure carries a TransferError's details; errors.Is matches the variant's sentinel.
type TransferFailure struct {
	Kind        error
	Balance     *big.Int // InsufficientFunds
	ExpectedFee *big.Int // BadFee
	DuplicateOf uint64   // Duplicate
	Message     string
}

func (f *TransferFailure) Error() string {
	switch {
	case f.Kind == ErrInsufficientFunds && f.Balance != nil:
		return fmt.Sprintf("%v: balance is %s", f.Kind, f.Balance)
	case f.Kind == ErrBadFee && f.ExpectedFee != nil:
		return fmt.Sprintf("%v: expected fee %s", f.Kind, f.ExpectedFee)
	case f.Kind == ErrDuplicate:
		return fmt.Sprintf("%v as block %d", f.Kind, f.DuplicateOf)
	case f.Message != "":
		return fmt.Sprintf("%v: %s", f.Kind, f.Message)
	}
	return f.Kind.Error()
}

// Unwrap lets errors.Is find the variant.
func (f *TransferFailure) Unwrap() error { return f.Kind }

func failureOf(e *TransferError) *TransferFailure {
	switch {
	case e.BadFee != nil:
		return &TransferFailure{Kind: ErrBadFee, ExpectedFee: e.BadFee.ExpectedFee.BigInt()}
	case e.BadBurn != nil:
		return &TransferFailure{Kind: ErrBadBurn, Message: "minimum " + e.BadBurn.MinBurnAmount.BigInt().String()}
	case e.InsufficientFunds != nil:
		return &TransferFailure{Kind: ErrInsufficientFunds, Balance: e.InsufficientFunds.Balance.BigInt()}
	case e.TooOld != nil:
		return &TransferFailure{Kind: ErrTooOld}
	case e.CreatedInFuture != nil:
		return &TransferFailure{Kind: ErrCreatedInFuture}
	case e.Duplicate != nil:
		return &TransferFailure{Kind: ErrDuplicate, DuplicateOf: e.Duplicate.DuplicateOf.BigInt().Uint64()}
	case e.TemporarilyUnavailable != nil:
		return &TransferFailure{Kind: ErrTemporarilyUnavailable}
	case e.GenericError != nil:
		return &TransferFailure{Kind: ErrGeneric, Message: e.GenericError.Message}
	}
	return &TransferFailure{Kind: ErrMalformed}
}
