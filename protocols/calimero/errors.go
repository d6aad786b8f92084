package calimero

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Errors of the transport.
var (
	ErrUnavailable = errors.New("calimero node unreachable")
	ErrAuth        = errors.New("calimero authentication failed")
	ErrProtocol    = errors.New("unexpected reply from the calimero node")
)

// Kinds of RPC errors callers branch on (errors.Is against an *RPCError).
var (
	ErrContextNotFound = errors.New("context not found on this calimero node")
	ErrUninitialized   = errors.New("context not synced yet")
	ErrGroupKeyPending = errors.New("context group key pending")
	ErrUnauthorized    = errors.New("not authorised in this context")
	ErrFunctionCall    = errors.New("app call failed")
	ErrParse           = errors.New("request refused by the node")
)

// RPCError is the `error` object of a merod JSON-RPC reply: a type tag and its data.
type RPCError struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Error quotes the node's type and data, each cut to a few hundred bytes (a reply can be
// MaxReply bytes).
func (e *RPCError) Error() string {
	typ := snippet([]byte(e.Type))
	if len(e.Data) == 0 || string(e.Data) == "{}" || string(e.Data) == "null" {
		return "calimero: " + typ
	}
	var s string
	if json.Unmarshal(e.Data, &s) == nil {
		return fmt.Sprintf("calimero: %s: %s", typ, snippet([]byte(s)))
	}
	return fmt.Sprintf("calimero: %s: %s", typ, snippet(e.Data))
}

// Transient reports whether a retry may succeed.
func (e *RPCError) Transient() bool { return e.Type == "Uninitialized" || e.Type == "GroupKeyPending" }

// Is maps the error shapes of shared/specs/CALIMERO.md §1 to the sentinels above.
func (e *RPCError) Is(target error) bool {
	switch target {
	case ErrContextNotFound:
		if e.Type == "ContextNotFound" {
			return true
		}
		var s string
		return e.Type == "FunctionCallError" && json.Unmarshal(e.Data, &s) == nil &&
			(strings.Contains(s, "No owned identity found") || strings.Contains(s, "not a member of this context"))
	case ErrUninitialized:
		return e.Type == "Uninitialized"
	case ErrGroupKeyPending:
		return e.Type == "GroupKeyPending"
	case ErrUnauthorized:
		return e.Type == "Unauthorized"
	case ErrFunctionCall:
		return e.Type == "FunctionCallError" || e.Type == "SerdeError"
	case ErrParse:
		return e.Type == "ParseError"
	}
	return false
}
