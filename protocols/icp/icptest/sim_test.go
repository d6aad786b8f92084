package icptest

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/aviate-labs/agent-go/candid"
	"github.com/aviate-labs/agent-go/certification"
	"github.com/aviate-labs/agent-go/certification/hashtree"
	"github.com/aviate-labs/agent-go/principal"
	"github.com/fxamacker/cbor/v2"
)

// TestV2CallAndReadState drives the endpoints only the JS agent uses: a v2 call answers 202, and
// a v2 read_state then certifies the request's status; the tree carries node keys and canister
// ranges under both subnet IDs, and the certificate verifies against the root key.
func TestV2CallAndReadState(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	arg, _ := candid.Marshal([]any{})
	content := map[string]any{
		"request_type": "call", "canister_id": s.ledgerP.Raw, "method_name": "icrc1_fee", "arg": arg,
		"sender": []byte{4}, "ingress_expiry": uint64(time.Now().Add(4 * time.Minute).UnixNano()), "nonce": []byte("0123456789abcdef"),
	}
	rid, err := certification.HashAny(content)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string, content map[string]any) *http.Response {
		body, _ := cbor.Marshal(map[string]any{"content": content})
		body = append([]byte{0xd9, 0xd9, 0xf7}, body...) // the JS agent's self-describe tag
		resp, err := http.Post(s.URL()+path, "application/cbor", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := post("/api/v2/canister/"+LedgerID+"/call", content); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("v2 call = %d, want 202", resp.StatusCode)
	}
	resp := post("/api/v2/canister/"+LedgerID+"/read_state", map[string]any{
		"request_type": "read_state", "paths": []any{[]any{[]byte("request_status"), rid[:]}}, "sender": []byte{4},
		"ingress_expiry": uint64(time.Now().Add(4 * time.Minute).UnixNano()),
	})
	defer resp.Body.Close()
	var env struct {
		Certificate []byte `cbor:"certificate"`
	}
	if err := cbor.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	var cert certification.Certificate
	if err := cbor.Unmarshal(env.Certificate, &cert); err != nil {
		t.Fatal(err)
	}
	if err := certification.VerifyCertificate(cert, s.ledgerP, s.RootKeyDER()); err != nil {
		t.Fatalf("certificate does not verify: %v", err)
	}
	if st, err := cert.Tree.Lookup(hashtree.Label("request_status"), rid[:], hashtree.Label("status")); err != nil || string(st) != "replied" {
		t.Errorf("request status = %q, %v; want replied", st, err)
	}
	for _, sub := range []principal.Principal{principal.MustDecode(certification.RootSubnetID), principal.NewSelfAuthenticating(s.RootKeyDER())} {
		if pk, err := cert.Tree.Lookup(hashtree.Label("subnet"), sub.Raw, hashtree.Label("node"), s.nodeID.Raw, hashtree.Label("public_key")); err != nil || len(pk) != 44 {
			t.Errorf("subnet %s node key = %d bytes, %v; want 44", sub, len(pk), err)
		}
		if _, err := cert.Tree.Lookup(hashtree.Label("subnet"), sub.Raw, hashtree.Label("canister_ranges")); err != nil {
			t.Errorf("subnet %s has no canister_ranges: %v", sub, err)
		}
	}
}
