package adminrpc

import "github.com/califusion/califusion/protocols/apierr"

// The admin API's error codes are protocols/apierr's (defined once, shared with the keys and
// updates protocols' refusals); these names are the same codes.
const (
	CodeParse          = apierr.Parse
	CodeInvalidRequest = apierr.InvalidRequest
	CodeMethodNotFound = apierr.MethodNotFound
	CodeInvalidParams  = apierr.InvalidParams
	CodeInternal       = apierr.Internal

	CodeNotFound            = apierr.NotFound
	CodePaymentInvalid      = apierr.PaymentInvalid
	CodePaymentInsufficient = apierr.PaymentInsufficient
	CodePaymentUsed         = apierr.PaymentUsed
	CodeIntegrity           = apierr.Integrity
	CodeNotUnlocked         = apierr.NotUnlocked
	CodeUpdateRejected      = apierr.UpdateRejected
	CodeUnavailable         = apierr.Unavailable
	CodeRole                = apierr.Role
	CodeConflict            = apierr.Conflict
	CodeInsufficientFunds   = apierr.InsufficientFunds
)

// Error is a JSON-RPC error object (apierr.Error). Handlers return it to choose the code; any
// other error becomes CodeInternal.
type Error = apierr.Error

// Errorf builds an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error { return apierr.Errorf(code, format, args...) }

// CodeOf returns the JSON-RPC code carried by err, or 0 when err is not an *Error.
func CodeOf(err error) int { return apierr.CodeOf(err) }
