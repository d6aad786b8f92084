package calimero

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/calimero/calimerotest"
)

func newSim(t *testing.T, opts calimerotest.Options) (*calimerotest.Sim, string) {
	t.Helper()
	sim, err := calimerotest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim, sim.CreateContext()
}

func client(sim *calimerotest.Sim, node int, ctxID string, user, pass string) *Client {
	n := sim.Node(node)
	return New(Config{URL: n.URL(), ContextID: ctxID, ExecutorPublicKey: n.Identity(), Username: user, Password: pass, RetryBase: time.Millisecond})
}

func TestKVRoundTrip(t *testing.T) {
	sim, ctxID := newSim(t, calimerotest.Options{})
	c := client(sim, 0, ctxID, "", "")
	if _, ok, err := c.Get(t.Context(), "k"); err != nil || ok {
		t.Fatalf("Get(absent) = %v, %v; want not found", ok, err)
	}
	if err := c.Set(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Get(t.Context(), "k"); err != nil || !ok || v != "v" {
		t.Fatalf("Get(k) = %q, %v, %v; want v", v, ok, err)
	}
	all, err := c.Entries(t.Context())
	if err != nil || all["k"] != "v" || len(all) != 1 {
		t.Fatalf("Entries = %v, %v", all, err)
	}
}

func TestErrorShapes(t *testing.T) {
	sim, ctxID := newSim(t, calimerotest.Options{})
	c := client(sim, 0, ctxID, "", "")
	other := client(sim, 0, "11111111111111111111111111111112", "", "")
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"unknown context", func() error { _, _, err := other.Get(t.Context(), "k"); return err }, ErrContextNotFound},
		{"unknown app method", func() error { return c.Execute(t.Context(), "nope", map[string]string{}, nil) }, ErrFunctionCall},
		{"bad args", func() error { return c.Execute(t.Context(), "set", map[string]any{"key": 1}, nil) }, ErrFunctionCall},
		{"extra arg field", func() error { return c.Execute(t.Context(), "get", map[string]string{"key": "k", "x": "y"}, nil) }, ErrFunctionCall},
		{"empty method", func() error { return c.Execute(t.Context(), "", nil, nil) }, ErrParse},
		{"bad context id", func() error { return New(Config{URL: sim.URL(), ContextID: "0OIl"}).Set(t.Context(), "k", "v") }, ErrParse},
		{"unreachable", func() error {
			return New(Config{URL: "http://127.0.0.1:1", ContextID: ctxID}).Set(t.Context(), "k", "v")
		}, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("%s = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	for _, kind := range []string{"Uninitialized", "GroupKeyPending"} {
		t.Run(kind, func(t *testing.T) {
			sim, ctxID := newSim(t, calimerotest.Options{})
			c := client(sim, 0, ctxID, "", "")
			sim.Node(0).SetFault(ctxID, kind, 3)
			if err := c.Set(t.Context(), "k", "v"); err != nil {
				t.Fatalf("Set after 3 × %s = %v, want success on retry", kind, err)
			}
			sim.Node(0).SetFault(ctxID, kind, 100)
			err := c.Set(t.Context(), "k", "v")
			var re *RPCError
			if !errors.As(err, &re) || re.Type != kind {
				t.Errorf("Set while always %s = %v, want that error after the retries", kind, err)
			}
		})
	}
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func TestAuthPaths(t *testing.T) {
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	sim, ctxID := newSim(t, calimerotest.Options{Users: map[string]string{"admin": "pw"}, Clock: clk.Now})

	if err := client(sim, 0, ctxID, "", "").Set(t.Context(), "k", "v"); !errors.Is(err, ErrAuth) {
		t.Errorf("Set without credentials on an auth node = %v, want ErrAuth", err)
	}
	if err := client(sim, 0, ctxID, "admin", "wrong").Set(t.Context(), "k", "v"); !errors.Is(err, ErrAuth) {
		t.Errorf("Set with a wrong password = %v, want ErrAuth", err)
	}
	c := client(sim, 0, ctxID, "admin", "pw")
	if err := c.Set(t.Context(), "k", "v1"); err != nil {
		t.Fatalf("Set after login = %v", err)
	}
	before := c.access

	clk.Add(2 * time.Hour) // access token expired: 401 token_expired → refresh → retry
	if err := c.Set(t.Context(), "k", "v2"); err != nil {
		t.Fatalf("Set with an expired token = %v, want refresh and success", err)
	}
	if c.access == before {
		t.Errorf("access token unchanged after expiry; want a refreshed one")
	}

	// Someone else uses the client's refresh token first: the client's refresh is refused as
	// reuse, and it must log in again.
	clk.Add(2 * time.Hour)
	stolen, _ := json.Marshal(map[string]string{"access_token": c.access, "refresh_token": c.refresh})
	resp, err := http.Post(sim.URL()+"/auth/refresh", "application/json", bytes.NewReader(stolen))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("thief's refresh = %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	again, _ := http.Post(sim.URL()+"/auth/refresh", "application/json", bytes.NewReader(stolen))
	if again.StatusCode != 401 || again.Header.Get("X-Auth-Error") != "token_reuse" {
		t.Errorf("second use of a refresh token = %d %q, want 401 token_reuse", again.StatusCode, again.Header.Get("X-Auth-Error"))
	}
	again.Body.Close()
	if v, ok, err := c.Get(t.Context(), "k"); err != nil || !ok || v != "v2" {
		t.Fatalf("Get after the refresh token was reused = %q, %v, %v; want re-login and v2", v, ok, err)
	}
}

func TestAnchors(t *testing.T) {
	sim, ctxID := newSim(t, calimerotest.Options{Nodes: 2, ReplicationDelay: 200 * time.Millisecond})
	a := NewAnchors(client(sim, 0, ctxID, "", ""))
	b := NewAnchors(client(sim, 1, ctxID, "", ""))
	okSig := func(r []byte) error {
		if !bytes.HasPrefix(r, []byte("signed:")) {
			return errors.New("bad signature")
		}
		return nil
	}
	record := []byte("signed:manifest")
	id, err := a.Put(t.Context(), record)
	if err != nil {
		t.Fatal(err)
	}
	if _, st, err := a.Get(t.Context(), id, okSig); st != StateVerified || err != nil {
		t.Fatalf("Get on the writer = %s, %v; want verified", st, err)
	}
	// The other member lags, then sees it.
	if _, st, _ := b.Get(t.Context(), id, okSig); st != StateMissing {
		t.Errorf("Get on the lagging member right away = %s, want missing", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, st, _ := b.Get(t.Context(), id, okSig)
		if st == StateVerified {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("anchor never replicated (state %s)", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tampered := []struct {
		name  string
		value string
	}{
		{"other record", base64.StdEncoding.EncodeToString([]byte("signed:other"))},
		{"not base64", "%%%"},
		{"bad signature", ""},
	}
	for _, tt := range tampered {
		t.Run(tt.name, func(t *testing.T) {
			rec, v := record, tt.value
			if tt.name == "bad signature" {
				rec = []byte("forged:manifest")
				v = base64.StdEncoding.EncodeToString(rec)
			}
			key := AnchorKey(id)
			if tt.name == "bad signature" {
				id2, _ := a.Put(t.Context(), rec)
				if _, st, err := a.Get(t.Context(), id2, okSig); st != StateInvalid || !errors.Is(err, ErrAnchorInvalid) {
					t.Errorf("Get(forged) = %s, %v; want invalid", st, err)
				}
				return
			}
			sim.Node(1).Overwrite(ctxID, key, v)
			if _, st, err := b.Get(t.Context(), id, okSig); st != StateInvalid || !errors.Is(err, ErrAnchorInvalid) {
				t.Errorf("Get after another member wrote %s = %s, %v; want invalid", tt.name, st, err)
			}
			a.Put(t.Context(), record) // restore
		})
	}
	recs, invalid, err := a.List(t.Context(), okSig)
	if err != nil || len(recs) != 1 || invalid != 1 || string(recs[0]) != string(record) {
		t.Errorf("List = %d records (%q), %d invalid, %v; want the one valid record and one invalid", len(recs), recs, invalid, err)
	}
}

func FuzzDecodeAnchor(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString([]byte("signed:x")), []byte("signed:x"))
	f.Add("%%", []byte{})
	f.Fuzz(func(t *testing.T, value string, want []byte) {
		id := [32]byte{}
		copy(id[:], want)
		rec, err := DecodeAnchor(id, value, func(r []byte) error {
			if !strings.HasPrefix(string(r), "signed:") {
				return errors.New("bad")
			}
			return nil
		})
		if err == nil && !strings.HasPrefix(string(rec), "signed:") {
			t.Fatalf("DecodeAnchor accepted %q", rec)
		}
	})
}
