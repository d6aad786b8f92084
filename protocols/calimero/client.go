// Package calimero is califusiond's client of a Calimero node (merod): JSON-RPC `execute` on a
// context running the kv-store app, merod's embedded auth (login, single-flight refresh, re-login),
// and anchors, the signed records califusiond keeps in that context so every member can audit
// them. Wire facts: shared/specs/CALIMERO.md; tests run against protocols/calimero/calimerotest.
package calimero

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config locates a context on a merod node.
type Config struct {
	URL               string // base URL, e.g. http://127.0.0.1:2528 (no default port is assumed)
	ContextID         string // base58
	ExecutorPublicKey string // this node's member key in the context; required by 0.10, ignored by 0.11
	Username          string // embedded auth; empty: no auth
	Password          string
	HTTP              *http.Client
	Retries           int           // attempts on Uninitialized / GroupKeyPending (default 8)
	RetryBase         time.Duration // first backoff (default 200ms), doubling
}

// Client calls one merod node, executing in one context (Config.ContextID); In returns a client
// for another context of the same node sharing this one's login.
type Client struct {
	cfg  Config
	next atomic.Uint64
	*authSession
}

// authSession is a node's login, shared by every Client of that node (In).
type authSession struct {
	authMu  sync.Mutex // single-flight for login and refresh
	probed  bool
	authOn  bool
	access  string
	refresh string
}

// New returns a client; it does not contact the node until the first call.
func New(cfg Config) *Client {
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 8
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 200 * time.Millisecond
	}
	return &Client{cfg: cfg, authSession: &authSession{}}
}

// In returns a client of the same node and login that executes in contextID as executor (the
// node's member key there; "" sends none, which 0.11 does not need).
func (c *Client) In(contextID, executor string) *Client {
	cfg := c.cfg
	cfg.ContextID, cfg.ExecutorPublicKey = contextID, executor
	return &Client{cfg: cfg, authSession: c.authSession}
}

// ContextID returns the context this client executes in.
func (c *Client) ContextID() string { return c.cfg.ContextID }

// Set stores key=value in the context.
func (c *Client) Set(ctx context.Context, key, value string) error {
	return c.Execute(ctx, "set", map[string]string{"key": key, "value": value}, nil)
}

// Get reads key; ok is false when the key is absent.
func (c *Client) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	var out *string
	if err := c.Execute(ctx, "get", map[string]string{"key": key}, &out); err != nil {
		return "", false, err
	}
	if out == nil {
		return "", false, nil
	}
	return *out, true, nil
}

// Entries returns every key and value in the context.
func (c *Client) Entries(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	err := c.Execute(ctx, "entries", map[string]string{}, &out)
	return out, err
}

// Execute calls an app method with args and decodes its output into out (which may be nil). It
// retries with backoff while the node reports Uninitialized or GroupKeyPending.
func (c *Client) Execute(ctx context.Context, method string, args, out any) error {
	wait := c.cfg.RetryBase
	for attempt := 1; ; attempt++ {
		err := c.executeOnce(ctx, method, args, out)
		var re *RPCError
		if !errors.As(err, &re) || !re.Transient() || attempt >= c.cfg.Retries {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

type executeParams struct {
	ContextID         string `json:"contextId"`
	Method            string `json:"method"`
	ArgsJSON          any    `json:"argsJson"`
	ExecutorPublicKey string `json:"executorPublicKey,omitempty"`
}

func (c *Client) executeOnce(ctx context.Context, method string, args, out any) error {
	body, err := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": c.next.Add(1), "method": "execute",
		"params": executeParams{ContextID: c.cfg.ContextID, Method: method, ArgsJSON: args, ExecutorPublicKey: c.cfg.ExecutorPublicKey},
	})
	if err != nil {
		return err
	}
	raw, err := c.do(ctx, http.MethodPost, "/jsonrpc", body)
	if err != nil {
		return err
	}
	return decodeExecuteReply(raw, method, out)
}

// decodeExecuteReply decodes a JSON-RPC reply of execute: its error as an *RPCError, or its
// result's output into out (which may be nil).
func decodeExecuteReply(raw []byte, method string, out any) error {
	var resp struct {
		Result *struct {
			Output json.RawMessage `json:"output"`
		} `json:"result"`
		Error *RPCError `json:"error"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("%w: execute reply is not JSON-RPC: %v", ErrProtocol, err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if resp.Result == nil {
		return fmt.Errorf("%w: execute reply has neither result nor error", ErrProtocol)
	}
	if out == nil || len(resp.Result.Output) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp.Result.Output, out); err != nil {
		return fmt.Errorf("%w: %s output: %v", ErrProtocol, method, err)
	}
	return nil
}

// MaxReply caps one HTTP reply from merod. The largest is an `entries` of the whole context
// (anchors are at most MaxAnchorSize each); a reply over the cap is refused, not truncated.
const MaxReply = 32 << 20

// readReply reads a reply body of at most MaxReply bytes.
func readReply(body io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(body, MaxReply+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read reply: %v", ErrUnavailable, err)
	}
	if len(raw) > MaxReply {
		return nil, fmt.Errorf("%w: reply exceeds %d bytes", ErrProtocol, MaxReply)
	}
	return raw, nil
}

// snippet is the start of a reply for an error message (a reply can be MaxReply bytes).
func snippet(raw []byte) string {
	const max = 256
	s := strings.TrimSpace(string(raw))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// do sends an authenticated request, refreshing or logging in again once on a 401.
func (c *Client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	if err := c.ensureAuth(ctx); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		c.authMu.Lock()
		token := c.access
		c.authMu.Unlock()
		status, hdr, raw, err := c.send(ctx, method, path, body, token)
		if err != nil {
			return nil, err
		}
		switch {
		case status == http.StatusUnauthorized && c.authOn && attempt == 0:
			if err := c.renew(ctx, token, hdr.Get("X-Auth-Error") == "token_expired"); err != nil {
				return nil, err
			}
			continue
		case status == http.StatusOK:
			return raw, nil
		case status == http.StatusUnauthorized || (status == http.StatusForbidden && hdr.Get("X-Auth-Error") != ""):
			return nil, fmt.Errorf("%w: HTTP %d %s", ErrAuth, status, snippet([]byte(hdr.Get("X-Auth-Error"))))
		}
		if e := decodeAPIError(status, raw); e != nil {
			return nil, e
		}
		if status == http.StatusForbidden {
			return nil, fmt.Errorf("%w: HTTP %d", ErrAuth, status)
		}
		return nil, fmt.Errorf("%w: HTTP %d: %s", ErrProtocol, status, snippet(raw))
	}
}

func (c *Client) send(ctx context.Context, method, path string, body []byte, token string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, c.cfg.URL, err)
	}
	defer resp.Body.Close()
	raw, err := readReply(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, raw, nil
}

// ensureAuth probes once whether the node wants tokens (GET /admin-api/contexts without one:
// 200 → proxy mode, 401 → embedded auth) and logs in if so.
func (c *Client) ensureAuth(ctx context.Context) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if c.probed {
		return nil
	}
	status, _, _, err := c.send(ctx, http.MethodGet, "/admin-api/contexts", nil, "")
	if err != nil {
		return err
	}
	switch status {
	case http.StatusOK:
		c.authOn = false
	case http.StatusUnauthorized, http.StatusForbidden:
		c.authOn = true
		if c.cfg.Username == "" {
			return fmt.Errorf("%w: %s requires a login; set calimero.credentials_file", ErrAuth, c.cfg.URL)
		}
		if err := c.loginLocked(ctx); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: auth probe: HTTP %d", ErrProtocol, status)
	}
	c.probed = true
	return nil
}

// renew gets a fresh access token after a 401 on token used: refresh when it expired, log in
// again when refreshing fails or the token was refused for another reason. Concurrent callers
// share one renewal.
func (c *Client) renew(ctx context.Context, used string, expired bool) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if c.access != used {
		return nil // another caller renewed already
	}
	if expired && c.refresh != "" {
		if err := c.tokenCall(ctx, "/auth/refresh", map[string]string{"access_token": c.access, "refresh_token": c.refresh}); err == nil {
			return nil
		}
	}
	return c.loginLocked(ctx)
}

func (c *Client) loginLocked(ctx context.Context) error {
	return c.tokenCall(ctx, "/auth/token", map[string]any{
		"auth_method": "user_password", "public_key": c.cfg.Username, "client_name": c.cfg.URL,
		"permissions": []string{"admin"}, "timestamp": time.Now().Unix(),
		"provider_data": map[string]string{"username": c.cfg.Username, "password": c.cfg.Password},
	})
}

// tokenCall posts to an auth endpoint and stores the returned pair; caller holds authMu.
func (c *Client) tokenCall(ctx context.Context, path string, body any) error {
	b, _ := json.Marshal(body)
	status, _, raw, err := c.send(ctx, http.MethodPost, path, b, "")
	if err != nil {
		return err
	}
	access, refresh, err := decodeTokenReply(path, status, raw)
	if err != nil {
		return err
	}
	c.access, c.refresh = access, refresh
	return nil
}

// decodeTokenReply decodes the reply of an auth endpoint: the token pair of a 200 with data, or
// the node's error.
func decodeTokenReply(path string, status int, raw []byte) (access, refresh string, err error) {
	var env struct {
		Data *struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		} `json:"data"`
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return "", "", fmt.Errorf("%w: %s reply: %v", ErrProtocol, path, err)
	}
	if status != http.StatusOK || env.Data == nil || env.Data.AccessToken == "" {
		msg := fmt.Sprintf("HTTP %d", status)
		if env.Error != nil {
			msg = snippet([]byte(*env.Error))
		}
		return "", "", fmt.Errorf("%w: %s: %s", ErrAuth, path, msg)
	}
	if len(env.Data.AccessToken) > maxToken || len(env.Data.RefreshToken) > maxToken || !headerSafe(env.Data.AccessToken) {
		return "", "", fmt.Errorf("%w: %s: the node returned a token that cannot be sent back", ErrProtocol, path)
	}
	return env.Data.AccessToken, env.Data.RefreshToken, nil
}

// maxToken caps a token merod returns (a JWT of a few hundred bytes); it is sent back in a
// header on every call.
const maxToken = 16 << 10

// headerSafe reports whether s can be sent in an Authorization header.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
