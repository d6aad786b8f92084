package keys

import (
	"errors"
	"math/big"

	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
)

// ledgerErr maps a ledger client's error to an *apierr.Error (the old node.ledgerErr).
//
// TODO(integrator): ledger.Err — delete this copy and call node/ledger's Err.
func ledgerErr(err error) error {
	var sf *icp.Shortfall
	if errors.As(err, &sf) {
		need := new(big.Int).Add(sf.Amount, sf.Fee)
		return &apierr.Error{Code: apierr.InsufficientFunds, Message: "the ledger refused the transfer: " + sf.Error(),
			Data: map[string]string{"balance": sf.Balance.String(), "amount": sf.Amount.String(), "fee": sf.Fee.String(), "needed": need.String()}}
	}
	var f *icp.TransferFailure
	if errors.As(err, &f) && errors.Is(err, icp.ErrInsufficientFunds) {
		return &apierr.Error{Code: apierr.InsufficientFunds, Message: "the ledger refused the transfer: " + f.Error()}
	}
	if errors.As(err, &f) {
		code := apierr.InvalidParams
		if errors.Is(err, icp.ErrTemporarilyUnavailable) {
			code = apierr.Unavailable
		}
		return &apierr.Error{Code: code, Message: "the ledger refused the transfer: " + f.Error()}
	}
	return &apierr.Error{Code: apierr.Unavailable, Message: "the ledger call failed", Data: err.Error()}
}

// Refusals of catalog admission that a deposit answers with its own codes.
//
// TODO(integrator): catalog.ErrUnknownParent, catalog.ErrLineage, catalog.ErrQuota — make these
// the node/catalog sentinels (errUnknownParent = catalog.ErrUnknownParent, ...) once they land.
var (
	errUnknownParent = errors.New("its parent is not in this node's catalog")
	errLineage       = errors.New("its lineage does not verify")
	errQuota         = errors.New("its publisher has too many models in this node's catalog")
)

// connectCause is the cause of a failed Ledger.Client: the provider returns an *apierr.Error
// whose Data is the connection error, and the keys service words its own refusals around it (as
// the old code did around the raw error).
func connectCause(err error) string {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		if s, ok := ae.Data.(string); ok && s != "" {
			return s
		}
	}
	return err.Error()
}
