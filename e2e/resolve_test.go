package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aviate-labs/agent-go/principal"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// TestResolveLateJoinerFetchesByID: a node that joins after a model was published fetches it by
// its ID at once (model fetch resolves the ID from the network, without waiting for gossip or a
// catalog sync), and once it knows the model, every verb takes an 8-digit prefix of the ID.
func TestResolveLateJoinerFetchesByID(t *testing.T) {
	c := newCluster(t)
	pub := c.NewNodes("pub", 1, "publisher")[0]
	late := c.NewNodes("late", 1, "trainer")[0]
	c.start(pub)
	path, _ := writeRandom(t, 3<<20)
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "early", Price: "5", ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c.start(late, "--bootstrap", pub.P2PAddr())

	// At once: no wait for the catalog to have the model.
	var st adminrpc.JobStatus
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", late.Datadir, "--json", "model", "fetch", res.ModelID)), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "done" || st.BytesDone != st.BytesTotal || st.BytesTotal == 0 {
		t.Errorf("model fetch of a model published before the node joined = %+v, want done", st)
	}

	prefix := res.ModelID[:8]
	var got adminrpc.ModelDetail
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", late.Datadir, "--json", "model", "show", prefix)), &got); err != nil {
		t.Fatal(err)
	}
	if got.ModelID != res.ModelID || got.LocalChunks != got.Chunks {
		t.Errorf("model show %s = %s with %d/%d chunks, want %s complete", prefix, got.ModelID, got.LocalChunks, got.Chunks, res.ModelID)
	}
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", late.Datadir, "--json", "model", "fetch", prefix)), &st); err != nil || st.State != "done" {
		t.Errorf("model fetch %s = %+v, %v; want the complete model's job done", prefix, st, err)
	}
	if out := cli(t, false, "--datadir", late.Datadir, "model", "ls"); !strings.Contains(out, res.ModelID) || !strings.Contains(out, "3.0 MiB") || !strings.Contains(out, "v1") {
		t.Errorf("model ls printed:\n%s\nwant the model as v1 of 3.0 MiB", out)
	}

	// A prefix names only models the node knows; a full unknown ID is asked of the network.
	if out := cli(t, true, "--datadir", late.Datadir, "model", "show", "00000000"); !strings.Contains(out, "give the full 64-digit ID") {
		t.Errorf("model show of an unknown prefix printed %q, want a sentence about full IDs", out)
	}
	unknown := strings.Repeat("0", 63) + "1"
	if out := cli(t, true, "--datadir", late.Datadir, "model", "fetch", unknown); !strings.Contains(out, "no peer on the network knows model "+unknown) {
		t.Errorf("model fetch of an ID nobody has printed %q, want the network-wide not-found sentence", out)
	}
}

// TestResolveBuyFromOnlyAnID: a node started with one bootstrap peer and nothing but a model's
// ID resolves the model, fetches it, pays for it, unlocks it and exports the exact bytes.
func TestResolveBuyFromOnlyAnID(t *testing.T) {
	replica := startReplica(t)
	c := newCluster(t)
	coord := c.NewNodes("coord", 1, "coordinator")[0]
	pub := c.NewNodes("pub", 1, "publisher")[0]
	buyer := c.NewNodes("buyer", 1, "trainer")[0]
	useReplica(t, replica.URL(), coord, pub, buyer)
	c.start(coord)
	c.start(pub, "--bootstrap", coord.P2PAddr())
	waitHeard(t, coord, pub) // the publisher escrows the key with the coordinator
	path, sum := writeRandom(t, 2<<20)
	res, err := pub.Client().ModelPublish(t.Context(), adminrpc.PublishParams{Path: path, Name: "for sale", Price: "1000", Coordinators: []string{coord.Info().PeerID}})
	if err != nil {
		t.Fatal(err)
	}

	c.start(buyer, "--bootstrap", coord.P2PAddr())
	replica.Mint(principal.MustDecode(buyer.Info().ICPPrincipal), 10_000_000)
	var st adminrpc.JobStatus
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", buyer.Datadir, "--json", "model", "fetch", res.ModelID)), &st); err != nil || st.State != "done" {
		t.Fatalf("model fetch = %+v, %v; want done", st, err)
	}
	waitHeard(t, coord, buyer) // the key is asked of coordinators the node has heard of
	out := filepath.Join(t.TempDir(), "bought.bin")
	var exp adminrpc.ExportResult
	if err := json.Unmarshal([]byte(cli(t, false, "--datadir", buyer.Datadir, "--json", "model", "buy", res.ModelID, out)), &exp); err != nil {
		t.Fatal(err)
	}
	if exp.SHA256 != sum {
		t.Errorf("model buy exported sha256 %s, want %s", exp.SHA256, sum)
	}
	again, err := buyer.Client().ModelExportWith(t.Context(), adminrpc.ExportParams{ModelID: res.ModelID[:12], Path: filepath.Join(t.TempDir(), "again.bin")})
	if err != nil || again.SHA256 != sum {
		t.Errorf("model_export by a 12-digit prefix = %+v, %v; want sha256 %s", again, err, sum)
	}
}
