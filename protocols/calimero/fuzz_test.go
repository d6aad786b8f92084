package calimero

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxErrorText bounds what an error may quote of a reply.
const maxErrorText = 2048

// FuzzExecuteReply decodes arbitrary JSON-RPC replies of execute as the client does, into each
// output the client asks for: nothing panics, and an error never quotes more than a few hundred
// bytes of the reply.
func FuzzExecuteReply(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"result":{"output":"v"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"output":null}}`,
		`{"jsonrpc":"2.0","id":1,"result":{"output":{"k":"v"}}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"type":"FunctionCallError","data":"No owned identity found"}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"type":"Uninitialized","data":{"x":[1,2]}}}`,
		`{"result":{}}`, `[]`, `{"error":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var str *string
		m := map[string]string{}
		for _, out := range []any{nil, &str, &m} {
			err := decodeExecuteReply(raw, "get", out)
			if err == nil {
				continue
			}
			if n := len(err.Error()); n > maxErrorText {
				t.Fatalf("an error quotes %d bytes of the reply", n)
			}
			var re *RPCError
			if errors.As(err, &re) {
				re.Transient()
				for _, k := range []error{ErrContextNotFound, ErrUninitialized, ErrFunctionCall, ErrParse} {
					errors.Is(err, k)
				}
			}
		}
	})
}

// FuzzTokenReply decodes arbitrary auth replies: a token is returned only from a 200 with a
// token that fits in a header, and errors stay short.
func FuzzTokenReply(f *testing.F) {
	f.Add(200, []byte(`{"data":{"access_token":"a.b.c","refresh_token":"r"}}`))
	f.Add(401, []byte(`{"error":"invalid credentials"}`))
	f.Add(200, []byte(`{"data":{"access_token":"a\r\nX-Injected: 1"}}`))
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		access, _, err := decodeTokenReply("/auth/token", status, raw)
		if err != nil {
			if n := len(err.Error()); n > maxErrorText {
				t.Fatalf("an error quotes %d bytes of the reply", n)
			}
			return
		}
		if status != http.StatusOK || access == "" || !headerSafe(access) || len(access) > maxToken {
			t.Fatalf("accepted token %q from HTTP %d", access, status)
		}
	})
}

// TestRepliesAreCapped: a reply over MaxReply is refused as such (it was truncated and then
// reported as malformed JSON), and an error reply's body is quoted only in part.
func TestRepliesAreCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/admin-api/contexts":
			w.WriteHeader(http.StatusOK)
		case r.Header.Get("X-Test") == "":
			// An execute reply one byte over the cap: a valid JSON-RPC reply padded with spaces.
			body := `{"jsonrpc":"2.0","id":1,"result":{"output":"v"}}`
			io.WriteString(w, body)
			io.Copy(w, io.LimitReader(spaces{}, int64(MaxReply+1-len(body))))
		}
	}))
	defer srv.Close()
	c := New(Config{URL: srv.URL, ContextID: "c", RetryBase: time.Millisecond})
	if _, _, err := c.Get(t.Context(), "k"); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("Get with a reply over the cap = %v; want an error naming the cap", err)
	}

	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/admin-api/contexts" {
			return
		}
		w.WriteHeader(http.StatusBadGateway)
		io.Copy(w, io.LimitReader(spaces{'x'}, 1<<20))
	}))
	defer big.Close()
	c = New(Config{URL: big.URL, ContextID: "c", RetryBase: time.Millisecond})
	if _, _, err := c.Get(t.Context(), "k"); err == nil || len(err.Error()) > maxErrorText {
		t.Errorf("Get with a 1 MiB error page: error of %d bytes; want a short one", len(err.Error()))
	}
	// An RPC error's type and data are quoted in part too.
	long := `{"error":{"type":"` + strings.Repeat("T", 1<<16) + `","data":"` + strings.Repeat("d", 1<<16) + `"}}`
	if err := decodeExecuteReply([]byte(long), "get", nil); err == nil || len(err.Error()) > maxErrorText {
		t.Errorf("RPC error of 128 KiB: error of %d bytes", len(err.Error()))
	}
}

// spaces reads as an endless run of one byte (a space by default).
type spaces []byte

func (s spaces) Read(p []byte) (int, error) {
	c := byte(' ')
	if len(s) > 0 {
		c = s[0]
	}
	for i := range p {
		p[i] = c
	}
	return len(p), nil
}

// FuzzInviteMessages decodes arbitrary invite requests and replies as the coordinator and the
// asker do (CBOR, then Check): nothing panics, and a reply that passes Check carries an
// invitation object and IDs in merod's encodings.
func FuzzInviteMessages(f *testing.F) {
	for _, m := range []any{
		&InviteRequest{Lineage: make([]byte, 32)},
		&InviteReply{Invitation: []byte(`{"invitation":{}}`), NamespaceID: strings.Repeat("ab", 32), ContextID: "HtsBz6JMseH7GQkDHt3VNYPjXVYxPqhrVv5GbW4GKUEd"},
		&InviteReply{Code: 1006, Message: "pay first"},
	} {
		b, err := wire.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x03, 0x5a, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req InviteRequest
		if wire.Unmarshal(b, &req) == nil && req.Check() == nil && len(req.Lineage) != 32 {
			t.Fatal("a request with a short lineage passed Check")
		}
		var rep InviteReply
		if wire.Unmarshal(b, &rep) != nil || rep.Check() != nil || rep.Code != 0 {
			return
		}
		if CheckInvitation(rep.Invitation) != nil || !isHexID(rep.NamespaceID) || !isBase58ID(rep.ContextID) {
			t.Fatalf("reply %+v passed Check", rep)
		}
	})
}

// FuzzTrainingRecord opens arbitrary catalog values as training records under arbitrary keys:
// nothing panics, and what opens is stored under its own lineage's and coordinator's key.
func FuzzTrainingRecord(f *testing.F) {
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPrivateKey(key)
	var lineage [32]byte
	v, err := SignTraining(&TrainingRecord{Lineage: lineage[:], ContextID: "HtsBz6JMseH7GQkDHt3VNYPjXVYxPqhrVv5GbW4GKUEd", NamespaceID: strings.Repeat("ab", 32), CreatedAt: 1}, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(TrainingKey(lineage, id), v)
	f.Add("califusion/training/v1/", "AAAA")
	f.Fuzz(func(t *testing.T, k, v string) {
		r, err := OpenTraining(k, v)
		if err != nil {
			if n := len(err.Error()); n > maxErrorText {
				t.Fatalf("an error quotes %d bytes", n)
			}
			return
		}
		if k != TrainingKey([32]byte(r.Lineage), r.CoordinatorID()) {
			t.Fatalf("record opened under key %q", k)
		}
	})
}

// FuzzAdminReplies decodes arbitrary admin API bodies as the client does: the namespace join
// reply (checked against the namespace asked for), an invitation reply, and {"error"} bodies.
func FuzzAdminReplies(f *testing.F) {
	ns := strings.Repeat("ab", 32)
	f.Add(200, []byte(`{"data":{"namespaceId":"`+ns+`","memberIdentity":"HtsBz6JMseH7GQkDHt3VNYPjXVYxPqhrVv5GbW4GKUEd","memberAccount":"00"}}`))
	f.Add(200, []byte(`{"data":{"invitation":{"invitation":{"groupId":"`+ns+`"},"inviterSignature":"00"}}}`))
	f.Add(504, []byte(`{"error":"no member reachable"}`))
	f.Add(200, []byte(`{"data":null}`))
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		if e := decodeAPIError(status, raw); e != nil {
			if len(e.Error()) > maxErrorText {
				t.Fatalf("an API error quotes %d bytes", len(e.Error()))
			}
			e.Transient()
		}
		var m NamespaceMember
		if decodeData("/namespaces/x/join", raw, &m) == nil && checkJoinReply(ns, &m) == nil {
			if m.NamespaceID != ns || !isBase58ID(m.MemberIdentity) {
				t.Fatalf("join reply %+v passed", m)
			}
		}
		var inv struct {
			Invitation json.RawMessage `json:"invitation"`
		}
		if decodeData("/namespaces/x/invite", raw, &inv) == nil && CheckInvitation(inv.Invitation) == nil {
			if len(inv.Invitation) > MaxInvitation || !json.Valid(inv.Invitation) {
				t.Fatal("an invalid invitation passed")
			}
		}
	})
}
