package calimerotest

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// authState is one node's embedded auth: issued tokens and refresh-token families.
type authState struct {
	opts Options
	mu   sync.Mutex
	// access token → expiry
	access map[string]time.Time
	// refresh token → its access token; used refresh tokens are kept to detect reuse
	refresh map[string]string
	used    map[string]bool
	revoked map[string]bool // access tokens revoked by a reuse
}

func newAuth(opts Options) *authState {
	return &authState{opts: opts, access: map[string]time.Time{}, refresh: map[string]string{}, used: map[string]bool{}, revoked: map[string]bool{}}
}

type tokenPair struct {
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	Error        *string `json:"error"`
}

type tokenEnvelope struct {
	Data  *tokenPair `json:"data"`
	Error *string    `json:"error"`
}

func (a *authState) issue() tokenPair {
	at, rt := "at-"+randomHex(), "rt-"+randomHex()
	a.access[at] = a.opts.Clock().Add(a.opts.AccessTTL)
	a.refresh[rt] = at
	return tokenPair{AccessToken: at, RefreshToken: rt}
}

func writeTokenError(w http.ResponseWriter, status int, header, msg string) {
	if header != "" {
		w.Header().Set("X-Auth-Error", header)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(tokenEnvelope{Error: &msg})
}

func writeTokens(w http.ResponseWriter, p tokenPair) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tokenEnvelope{Data: &p})
}

// token handles POST /auth/token (user_password).
func (a *authState) token(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AuthMethod   string `json:"auth_method"`
		PublicKey    string `json:"public_key"`
		ClientName   string `json:"client_name"`
		Timestamp    *int64 `json:"timestamp"`
		ProviderData struct {
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"provider_data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.AuthMethod == "" || req.PublicKey == "" || req.ClientName == "" || req.Timestamp == nil {
		writeTokenError(w, http.StatusBadRequest, "", "Invalid request: auth_method, public_key, client_name, timestamp and provider_data are required")
		return
	}
	want, ok := a.opts.Users[req.ProviderData.Username]
	if req.AuthMethod != "user_password" || !ok || subtle.ConstantTimeCompare([]byte(want), []byte(req.ProviderData.Password)) != 1 {
		writeTokenError(w, http.StatusUnauthorized, "", "Authentication failed: invalid username or password")
		return
	}
	a.mu.Lock()
	p := a.issue()
	a.mu.Unlock()
	writeTokens(w, p)
}

// refreshTokens handles POST /auth/refresh.
func (a *authState) refreshTokens(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeTokenError(w, http.StatusBadRequest, "", "Invalid request body")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used[req.RefreshToken] {
		// Reuse revokes the whole family: the access token it was paired with, and the pair
		// minted from it.
		for rt, at := range a.refresh {
			if at == req.AccessToken {
				delete(a.refresh, rt)
			}
		}
		writeTokenError(w, http.StatusUnauthorized, "token_reuse", "Refresh token has already been used")
		return
	}
	at, ok := a.refresh[req.RefreshToken]
	if !ok || at != req.AccessToken {
		writeTokenError(w, http.StatusUnauthorized, "", "Invalid refresh token")
		return
	}
	if a.opts.Clock().Before(a.access[at].Add(-60 * time.Second)) {
		writeTokenError(w, http.StatusUnauthorized, "", "Access token still valid")
		return
	}
	delete(a.refresh, req.RefreshToken)
	a.used[req.RefreshToken] = true
	delete(a.access, at)
	writeTokens(w, a.issue())
}

// check guards a protected route; it writes the refusal and returns false when the request may
// not pass.
func (a *authState) check(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok = r.URL.Query().Get("token")
	}
	a.mu.Lock()
	exp, known := a.access[tok]
	a.mu.Unlock()
	switch {
	case tok == "" || !known:
		w.WriteHeader(http.StatusUnauthorized)
		return false
	case !a.opts.Clock().Before(exp):
		w.Header().Set("X-Auth-Error", "token_expired")
		w.WriteHeader(http.StatusUnauthorized)
		return false
	}
	return true
}
