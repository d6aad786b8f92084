package icp

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/fxamacker/cbor/v2"
)

// TestAgentPanicsAreErrors: a replica that answers a transfer with a certificate whose hash
// tree is an empty CBOR array made agent-go index past the end of it (a panic that took the
// node down). The bounded call returns an error instead.
func TestAgentPanicsAreErrors(t *testing.T) {
	cert, _ := cbor.Marshal(map[string]any{"tree": cbor.RawMessage{0x80}, "signature": []byte{}})
	body, _ := cbor.Marshal(map[string]any{"status": "replied", "certificate": cert})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/cbor")
		if strings.HasSuffix(r.URL.Path, "/status") {
			b, _ := cbor.Marshal(map[string]any{"root_key": []byte{1}})
			w.Write(b)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c, err := New(Config{ReplicaURL: srv.URL, LedgerID: "ryjl3-tyaaa-aaaaa-aaaba-cai", Key: key, FetchRootKey: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Transfer(t.Context(), Account{Owner: principal.MustDecode("aaaaa-aa")}, big.NewInt(1), nil, time.Now())
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "broke the ICP agent") {
		t.Fatalf("Transfer against a replica sending an empty hash tree = %v; want ErrMalformed", err)
	}
}
