package calimero

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/protocols/calimero/calimerotest"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestAdminFlow runs the HEAD flow of shared/specs/CALIMERO.md §3 through the client, with
// embedded auth on: node 0 reads the catalog context's application, creates a namespace and a
// context in it, invites; node 1 joins (through one injected 504), finds its executor key, and
// reads node 0's write with its own client (In), under the replication delay.
func TestAdminFlow(t *testing.T) {
	users := map[string]string{"admin": "pw"}
	sim, catalog := newSim(t, calimerotest.Options{Nodes: 2, Users: users, ReplicationDelay: 100 * time.Millisecond})
	c0 := client(sim, 0, catalog, "admin", "pw")
	c1 := client(sim, 1, catalog, "admin", "pw")
	ctx := t.Context()
	if err := c0.Health(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := c0.Context(ctx, catalog)
	if err != nil || info.ApplicationID != calimerotest.DefaultApplication {
		t.Fatalf("Context(catalog) = %+v, %v", info, err)
	}
	if _, err := c0.Context(ctx, "11111111111111111111111111111112"); !errors.Is(err, ErrAdminNotFound) {
		t.Errorf("Context(unknown) = %v, want ErrAdminNotFound", err)
	}
	ns, err := c0.CreateNamespace(ctx, info.ApplicationID, "lineage")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c0.CreateContext(ctx, info.ApplicationID, strings.Repeat("ab", 32)); !errors.Is(err, ErrAdminNotFound) {
		t.Errorf("CreateContext in an unknown namespace = %v, want ErrAdminNotFound", err)
	}
	created, err := c0.CreateContext(ctx, info.ApplicationID, ns)
	if err != nil || created.MemberPublicKey != sim.Node(0).Identity() || created.GroupID != ns {
		t.Fatalf("CreateContext = %+v, %v", created, err)
	}
	t0 := c0.In(created.ContextID, created.MemberPublicKey)
	if err := t0.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	ids, err := c1.IdentitiesOwned(ctx, created.ContextID)
	if err != nil || len(ids) != 0 {
		t.Errorf("IdentitiesOwned before the join = %v, %v; want none", ids, err)
	}
	if _, _, err := c1.In(created.ContextID, "").Get(ctx, "k"); !errors.Is(err, ErrContextNotFound) {
		t.Errorf("Get before the join = %v, want ErrContextNotFound (no owned identity)", err)
	}
	if _, err := c1.Invite(ctx, ns); !errors.Is(err, ErrAdminRefused) {
		t.Errorf("Invite by a non-member = %v, want ErrAdminRefused", err)
	}
	inv, err := c0.Invite(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	forged := json.RawMessage(strings.Replace(string(inv), `"inviterSignature":"`, `"inviterSignature":"00`, 1))
	if _, err := c1.JoinNamespace(ctx, ns, forged); !errors.Is(err, ErrAdminRefused) {
		t.Errorf("JoinNamespace with a forged invitation = %v, want ErrAdminRefused", err)
	}
	sim.Node(1).FailAdmin("POST /admin-api/namespaces/{id}/join", 504, 1)
	m, err := c1.JoinNamespace(ctx, ns, inv)
	if err != nil || m.MemberIdentity != sim.Node(1).Identity() {
		t.Fatalf("JoinNamespace = %+v, %v", m, err)
	}
	if n := sim.Node(1).Calls("POST /admin-api/namespaces/{id}/join"); n != 3 {
		t.Errorf("node 1 served %d joins, want 3 (forged, 504, retried)", n)
	}
	ids, err = c1.IdentitiesOwned(ctx, created.ContextID)
	if err != nil || len(ids) != 1 || ids[0] != sim.Node(1).Identity() {
		t.Fatalf("IdentitiesOwned after the join = %v, %v", ids, err)
	}
	j, err := c1.JoinContext(ctx, created.ContextID)
	if err != nil || j.MemberPublicKey != ids[0] {
		t.Errorf("JoinContext = %+v, %v", j, err)
	}
	// Uninitialized until the snapshot arrives; Execute retries it.
	v, ok, err := c1.In(created.ContextID, ids[0]).Get(ctx, "k")
	if err != nil || !ok || v != "v" {
		t.Errorf("Get on node 1 after the join = %q %v %v, want v", v, ok, err)
	}
	list, err := c1.Contexts(ctx)
	if err != nil || len(list) != 2 {
		t.Errorf("Contexts on node 1 = %+v, %v; want the catalog and the joined one", list, err)
	}
}

func TestAPIErrorIs(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   error
	}{{504, ErrUnavailable}, {503, ErrUnavailable}, {404, ErrAdminNotFound}, {400, ErrAdminRefused}, {403, ErrAdminRefused}, {500, ErrProtocol}} {
		err := error(&APIError{Status: tt.status, Message: "x"})
		if !errors.Is(err, tt.want) {
			t.Errorf("HTTP %d is not %v", tt.status, tt.want)
		}
	}
	if errors.Is(&APIError{Status: 400}, ErrUnavailable) {
		t.Error("HTTP 400 counts as transient")
	}
}

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return k, id
}

func TestTrainingRecord(t *testing.T) {
	key, id := newKey(t)
	var lineage [32]byte
	lineage[0] = 7
	r := &TrainingRecord{Lineage: lineage[:], ContextID: calimerotest.DefaultApplication, NamespaceID: strings.Repeat("ab", 32), CreatedAt: 1}
	v, err := SignTraining(r, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenTraining(TrainingKey(lineage, id), v)
	if err != nil || got.CoordinatorID() != id || got.ContextID != r.ContextID {
		t.Fatalf("OpenTraining = %+v, %v", got, err)
	}
	var other [32]byte
	if _, err := OpenTraining(TrainingKey(other, id), v); err == nil {
		t.Error("a record copied under another lineage's key opened")
	}
	_, id2 := newKey(t)
	if _, err := OpenTraining(TrainingKey(lineage, id2), v); err == nil {
		t.Error("a record under another coordinator's key opened")
	}
	// Re-signed by another key but claiming the first coordinator: the signature fails.
	key2, _ := newKey(t)
	v2, _ := SignTraining(&TrainingRecord{Lineage: lineage[:], ContextID: r.ContextID, NamespaceID: r.NamespaceID, CreatedAt: 1}, key2)
	if _, err := OpenTraining(TrainingKey(lineage, id), v2); err == nil {
		t.Error("a record signed by another key opened under the first coordinator's key")
	}
	if _, err := OpenTraining(TrainingKey(lineage, id), "%%%"); err == nil {
		t.Error("garbage opened")
	}
}

func TestInviteReplyCheck(t *testing.T) {
	good := InviteReply{Invitation: []byte(`{"a":1}`), NamespaceID: strings.Repeat("ab", 32), ContextID: calimerotest.DefaultApplication}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]InviteReply{
		"invitation not an object": {Invitation: []byte(`"x"`), NamespaceID: good.NamespaceID, ContextID: good.ContextID},
		"namespace not hex":        {Invitation: good.Invitation, NamespaceID: "zz", ContextID: good.ContextID},
		"namespace upper case":     {Invitation: good.Invitation, NamespaceID: strings.Repeat("AB", 32), ContextID: good.ContextID},
		"context not base58":       {Invitation: good.Invitation, NamespaceID: good.NamespaceID, ContextID: "0OIl"},
		"long refusal":             {Code: 1006, Message: strings.Repeat("x", 2000)},
	} {
		if err := bad.Check(); err == nil {
			t.Errorf("%s: Check accepted %+v", name, bad)
		}
	}
}
