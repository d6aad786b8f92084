package calimero

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mr-tron/base58"
)

// The admin API calls of shared/specs/CALIMERO.md §3 (HEAD / 0.11 shapes): namespaces, contexts
// in them, invitations and joins, the identities this node owns. Success bodies are
// {"data": ...}; failures {"error": "..."} with a 4xx/5xx status, returned as *APIError.

// ErrAdminNotFound matches an *APIError with status 404 (unknown namespace, context, invitation).
var ErrAdminNotFound = errors.New("not found on this calimero node")

// ErrAdminRefused matches an *APIError with status 400 or 403 (a bad or forged request, or one
// this node may not make).
var ErrAdminRefused = errors.New("refused by the calimero node")

// APIError is an admin API failure: the HTTP status and the node's {"error": message}.
type APIError struct {
	Status  int
	Message string
}

// Error quotes the status and the node's message.
func (e *APIError) Error() string {
	return fmt.Sprintf("calimero admin API: HTTP %d: %s", e.Status, e.Message)
}

// Is maps the status to the transport's sentinels: 503/504 are ErrUnavailable (no member of
// the namespace reachable yet: retry), 404 ErrAdminNotFound, 400/403 ErrAdminRefused; every
// failure is also ErrProtocol.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	case ErrAdminNotFound:
		return e.Status == http.StatusNotFound
	case ErrAdminRefused:
		return e.Status == http.StatusBadRequest || e.Status == http.StatusForbidden
	case ErrProtocol:
		return true
	}
	return false
}

// Transient reports whether retrying may succeed (503, 504).
func (e *APIError) Transient() bool { return errors.Is(e, ErrUnavailable) }

// decodeAPIError returns the *APIError of a non-200 reply whose body is {"error": "..."}, or
// nil when the body is something else.
func decodeAPIError(status int, raw []byte) *APIError {
	var env struct {
		Error *string `json:"error"`
	}
	if json.Unmarshal(raw, &env) != nil || env.Error == nil {
		return nil
	}
	return &APIError{Status: status, Message: snippet([]byte(*env.Error))}
}

// admin sends an admin API call and decodes its data into out.
func (c *Client) admin(ctx context.Context, method, path string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	raw, err := c.do(ctx, method, "/admin-api"+path, b)
	if err != nil {
		return err
	}
	return decodeData(path, raw, out)
}

// decodeData decodes the data of a {"data": ...} reply into out.
func decodeData(path string, raw []byte, out any) error {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Data) == 0 || bytes.Equal(env.Data, []byte("null")) {
		return fmt.Errorf("%w: %s reply has no data: %s", ErrProtocol, path, snippet(raw))
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("%w: %s reply: %v", ErrProtocol, path, err)
	}
	return nil
}

// Health checks GET /admin-api/health answers "alive".
func (c *Client) Health(ctx context.Context) error {
	var h struct {
		Status string `json:"status"`
	}
	if err := c.admin(ctx, http.MethodGet, "/health", nil, &h); err != nil {
		return err
	}
	if h.Status != "alive" {
		return fmt.Errorf("%w: health status %q", ErrProtocol, snippet([]byte(h.Status)))
	}
	return nil
}

// ContextInfo describes a context (GET /admin-api/contexts[/:id]).
type ContextInfo struct {
	ID               string `json:"id"`
	ApplicationID    string `json:"applicationId"`
	ContextStateHash string `json:"contextStateHash,omitempty"`
	GroupID          string `json:"groupId,omitempty"`
}

// Context returns context id as this node knows it (404: ErrAdminNotFound).
func (c *Client) Context(ctx context.Context, id string) (*ContextInfo, error) {
	if !isBase58ID(id) {
		return nil, fmt.Errorf("context id %q is not base58 of 32 bytes", snippet([]byte(id)))
	}
	var info ContextInfo
	if err := c.admin(ctx, http.MethodGet, "/contexts/"+url.PathEscape(id), nil, &info); err != nil {
		return nil, err
	}
	if info.ID != id || !isBase58ID(info.ApplicationID) {
		return nil, fmt.Errorf("%w: context %s reply names context %q, application %q", ErrProtocol, id, snippet([]byte(info.ID)), snippet([]byte(info.ApplicationID)))
	}
	return &info, nil
}

// Contexts lists the contexts of this node.
func (c *Client) Contexts(ctx context.Context) ([]ContextInfo, error) {
	var out struct {
		Contexts []ContextInfo `json:"contexts"`
	}
	if err := c.admin(ctx, http.MethodGet, "/contexts", nil, &out); err != nil {
		return nil, err
	}
	return out.Contexts, nil
}

// CreateNamespace creates a namespace (a group) for applicationID and returns its 64-hex ID.
func (c *Client) CreateNamespace(ctx context.Context, applicationID, name string) (string, error) {
	body := map[string]string{"applicationId": applicationID}
	if name != "" {
		body["name"] = name
	}
	var out struct {
		NamespaceID string `json:"namespaceId"`
	}
	if err := c.admin(ctx, http.MethodPost, "/namespaces", body, &out); err != nil {
		return "", err
	}
	if !isHexID(out.NamespaceID) {
		return "", fmt.Errorf("%w: namespace id %q is not 64 hex", ErrProtocol, snippet([]byte(out.NamespaceID)))
	}
	return out.NamespaceID, nil
}

// CreatedContext is the answer of POST /admin-api/contexts.
type CreatedContext struct {
	ContextID       string `json:"contextId"`
	MemberPublicKey string `json:"memberPublicKey"`
	GroupID         string `json:"groupId"`
	GroupCreated    bool   `json:"groupCreated"`
}

// CreateContext creates a context of applicationID in namespace namespaceID; this node's member
// key in it is MemberPublicKey.
func (c *Client) CreateContext(ctx context.Context, applicationID, namespaceID string) (*CreatedContext, error) {
	// initializationParams is a JSON array of byte values (none for kv-store), not base64.
	body := map[string]any{
		"applicationId": applicationID, "groupId": namespaceID,
		"contextSeed": nil, "initializationParams": []int{}, "identitySecret": nil,
	}
	var out CreatedContext
	if err := c.admin(ctx, http.MethodPost, "/contexts", body, &out); err != nil {
		return nil, err
	}
	if !isBase58ID(out.ContextID) || !isBase58ID(out.MemberPublicKey) {
		return nil, fmt.Errorf("%w: created context %q with member key %q", ErrProtocol, snippet([]byte(out.ContextID)), snippet([]byte(out.MemberPublicKey)))
	}
	return &out, nil
}

// MaxInvitation caps an invitation object (merod's is a few hundred bytes).
const MaxInvitation = 16 << 10

// Invite creates an invitation into namespaceID (POST /admin-api/namespaces/:id/invite) and
// returns it as the node made it: opaque JSON to hand to the joining node.
func (c *Client) Invite(ctx context.Context, namespaceID string) (json.RawMessage, error) {
	if !isHexID(namespaceID) {
		return nil, fmt.Errorf("namespace id %q is not 64 hex", snippet([]byte(namespaceID)))
	}
	var out struct {
		Invitation json.RawMessage `json:"invitation"`
	}
	if err := c.admin(ctx, http.MethodPost, "/namespaces/"+namespaceID+"/invite", map[string]any{}, &out); err != nil {
		return nil, err
	}
	if err := CheckInvitation(out.Invitation); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return out.Invitation, nil
}

// CheckInvitation checks that raw is a JSON object of at most MaxInvitation bytes: all a
// client can know of merod's opaque invitation.
func CheckInvitation(raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || len(raw) > MaxInvitation || raw[0] != '{' || !json.Valid(raw) {
		return fmt.Errorf("an invitation must be a JSON object of at most %d bytes", MaxInvitation)
	}
	return nil
}

// NamespaceMember is the answer of a namespace join.
type NamespaceMember struct {
	NamespaceID    string `json:"namespaceId"`
	MemberIdentity string `json:"memberIdentity"`
	MemberAccount  string `json:"memberAccount"`
}

// JoinNamespace joins namespaceID with an invitation another member made
// (POST /admin-api/namespaces/:id/join). It retries while the node answers 503/504 (no member
// reachable yet), at most Config.Retries times with doubling backoff.
func (c *Client) JoinNamespace(ctx context.Context, namespaceID string, invitation json.RawMessage) (*NamespaceMember, error) {
	if !isHexID(namespaceID) {
		return nil, fmt.Errorf("namespace id %q is not 64 hex", snippet([]byte(namespaceID)))
	}
	if err := CheckInvitation(invitation); err != nil {
		return nil, err
	}
	var out NamespaceMember
	err := c.retry(ctx, func() error {
		return c.admin(ctx, http.MethodPost, "/namespaces/"+namespaceID+"/join", map[string]json.RawMessage{"invitation": invitation}, &out)
	})
	if err != nil {
		return nil, err
	}
	if err := checkJoinReply(namespaceID, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// checkJoinReply checks a namespace join answer names the namespace asked for and a member key.
func checkJoinReply(namespaceID string, m *NamespaceMember) error {
	if m.NamespaceID != namespaceID || !isBase58ID(m.MemberIdentity) {
		return fmt.Errorf("%w: join of %s answered namespace %q, member %q", ErrProtocol, namespaceID, snippet([]byte(m.NamespaceID)), snippet([]byte(m.MemberIdentity)))
	}
	return nil
}

// JoinedContext is the answer of a context join.
type JoinedContext struct {
	ContextID       string `json:"contextId"`
	MemberPublicKey string `json:"memberPublicKey"`
}

// JoinContext joins a context of a namespace this node is a member of
// (POST /admin-api/contexts/:id/join); contexts are auto-followed, so this is the fallback.
func (c *Client) JoinContext(ctx context.Context, contextID string) (*JoinedContext, error) {
	if !isBase58ID(contextID) {
		return nil, fmt.Errorf("context id %q is not base58 of 32 bytes", snippet([]byte(contextID)))
	}
	var out JoinedContext
	err := c.retry(ctx, func() error {
		return c.admin(ctx, http.MethodPost, "/contexts/"+contextID+"/join", nil, &out)
	})
	if err != nil {
		return nil, err
	}
	if out.ContextID != contextID || !isBase58ID(out.MemberPublicKey) {
		return nil, fmt.Errorf("%w: join of context %s answered %q with key %q", ErrProtocol, contextID, snippet([]byte(out.ContextID)), snippet([]byte(out.MemberPublicKey)))
	}
	return &out, nil
}

// IdentitiesOwned returns this node's member keys in contextID (empty: not a member).
func (c *Client) IdentitiesOwned(ctx context.Context, contextID string) ([]string, error) {
	if !isBase58ID(contextID) {
		return nil, fmt.Errorf("context id %q is not base58 of 32 bytes", snippet([]byte(contextID)))
	}
	var out struct {
		Identities []string `json:"identities"`
	}
	if err := c.admin(ctx, http.MethodGet, "/contexts/"+contextID+"/identities-owned", nil, &out); err != nil {
		return nil, err
	}
	for _, id := range out.Identities {
		if !isBase58ID(id) {
			return nil, fmt.Errorf("%w: identity %q is not base58 of 32 bytes", ErrProtocol, snippet([]byte(id)))
		}
	}
	return out.Identities, nil
}

// retry runs call until it succeeds, fails for good, or Config.Retries attempts answered
// 503/504; the wait doubles from Config.RetryBase.
func (c *Client) retry(ctx context.Context, call func() error) error {
	wait := c.cfg.RetryBase
	for attempt := 1; ; attempt++ {
		err := call()
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || !ae.Transient() || attempt >= c.cfg.Retries {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// isBase58ID reports whether s is base58 of 32 bytes (context, application, public key IDs).
func isBase58ID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	b, err := base58.Decode(s)
	return err == nil && len(b) == 32
}

// isHexID reports whether s is 64 lowercase hex characters (namespace and group IDs).
func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == toLowerASCII(s)
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
