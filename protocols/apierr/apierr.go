// Package apierr defines CaliFusion's error codes once: the admin JSON-RPC API answers with them
// (shared/API.md), and the keys and updates protocols carry them in their refusals, so a trainer
// reports a coordinator's refusal with the code the coordinator chose. Services return an *Error
// to choose the code a caller sees; any other error is an internal one.
package apierr

import (
	"errors"
	"fmt"
)

// Standard JSON-RPC 2.0 error codes.
const (
	Parse          = -32700
	InvalidRequest = -32600
	MethodNotFound = -32601
	InvalidParams  = -32602
	Internal       = -32603
)

// Application error codes (shared/API.md).
const (
	NotFound            = 1001
	PaymentInvalid      = 1002
	PaymentInsufficient = 1003
	PaymentUsed         = 1004
	Integrity           = 1005
	NotUnlocked         = 1006
	UpdateRejected      = 1007
	Unavailable         = 1008
	Role                = 1009
	Conflict            = 1010
	InsufficientFunds   = 1011 // the paying account holds less than amount + fee
)

// Error is a coded error: the JSON-RPC error object the admin API answers with.
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

// CodeOf returns the code carried by err, or 0 when err is not an *Error.
func CodeOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// RejectedData is the data of an UpdateRejected error: the reason code and the update's norm.
type RejectedData struct {
	Reason string  `json:"reason"`
	Norm   float64 `json:"norm"`
}
