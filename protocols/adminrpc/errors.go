package adminrpc

import (
	"errors"
	"fmt"
)

// Standard JSON-RPC 2.0 error codes.
const (
	CodeParse          = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternal       = -32603
)

// Application error codes (shared/API.md).
const (
	CodeNotFound            = 1001
	CodePaymentInvalid      = 1002
	CodePaymentInsufficient = 1003
	CodePaymentUsed         = 1004
	CodeIntegrity           = 1005
	CodeNotUnlocked         = 1006
	CodeUpdateRejected      = 1007
	CodeUnavailable         = 1008
	CodeRole                = 1009
	CodeConflict            = 1010
	CodeInsufficientFunds   = 1011 // insufficient_funds: the paying account holds less than amount + fee
)

// Error is a JSON-RPC error object. Handlers return it to choose the code; any other error
// becomes CodeInternal.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (code %d)", e.Message, e.Code) }

// Errorf builds an *Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the JSON-RPC code carried by err, or 0 when err is not an *Error.
func CodeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
