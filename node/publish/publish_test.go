package publish

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/califusion/califusion/node/catalog"
	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/store"
	"github.com/califusion/califusion/store/blob"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakes records what each step was asked to do.
type fakes struct {
	blobDir   string
	blobs     *blob.Dir
	complete  map[content.ModelID]uint64
	keys      map[content.ModelID]content.Key
	stored    map[content.ModelID]bool
	published map[content.ModelID]*catalog.Record
	announced []content.ModelID
	provided  []content.ModelID
	anchored  [][]byte
	escrowed  []content.ModelID
	failTx    error
	// held are the keys held in memory only; escrowShort, when set, is Escrow's error.
	held        map[content.ModelID]content.Key
	escrowShort error
}

func (f *fakes) Blobs() *blob.Dir { return f.blobs }
func (f *fakes) PutComplete(tx *store.Tx, id content.ModelID, leaves [][32]byte, chunks uint64) error {
	if uint64(len(leaves)) != chunks {
		return errors.New("leaves do not match the chunk count")
	}
	f.complete[id] = chunks
	return f.failTx
}
func (f *fakes) Put(tx *store.Tx, id content.ModelID, k content.Key) error {
	f.keys[id] = k
	return nil
}
func (f *fakes) Get(id content.ModelID) (*catalog.Record, error) {
	if r, ok := f.published[id]; ok {
		return r, nil
	}
	return nil, store.ErrNotFound
}
func (f *fakes) StorePublished(tx *store.Tx, r *catalog.Record, added time.Time) error {
	f.stored[r.ID] = true
	return nil
}
func (f *fakes) Published(r *catalog.Record, added time.Time) { f.published[r.ID] = r }
func (f *fakes) Announce(ctx context.Context, r *catalog.Record) {
	f.announced = append(f.announced, r.ID)
}
func (f *fakes) Provide(ids ...content.ModelID) { f.provided = append(f.provided, ids...) }
func (f *fakes) Escrow(ctx context.Context, r *catalog.Record, k content.Key) (int, error) {
	f.escrowed = append(f.escrowed, r.ID)
	n := len(r.RootRecord().Manifest.CoordinatorIDs())
	if f.escrowShort != nil {
		return 0, f.escrowShort
	}
	return n, nil
}
func (f *fakes) Hold(id content.ModelID, k content.Key) { f.held[id] = k }

type anchors struct{ f *fakes }

func (a anchors) Put(ctx context.Context, signed []byte) error {
	a.f.anchored = append(a.f.anchored, signed)
	return nil
}

func newPublisher(t *testing.T, coordinator bool) (*Service, *fakes, peer.ID) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(priv)
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blobDir := t.TempDir()
	bd, err := blob.OpenDir(blobDir)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakes{blobDir: blobDir, blobs: bd, complete: map[content.ModelID]uint64{}, keys: map[content.ModelID]content.Key{},
		stored: map[content.ModelID]bool{}, published: map[content.ModelID]*catalog.Record{}, held: map[content.ModelID]content.Key{}}
	s := New(Config{Self: self, Key: priv, Payee: "aaaaa-aa", IsPublisher: true, IsCoordinator: coordinator, ChunkSize: content.MinChunkSize},
		Deps{Store: st, Chunks: f, Keys: f, Catalog: f, Anchoring: anchors{f}, Escrow: f})
	return s, f, self
}

func writeModel(t *testing.T, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.bin")
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A publish runs every step once: the blob under the ModelID, the records in the transaction,
// the anchor, the escrow, the announcement and the provider record; a coordinator names itself.
func TestPublishRunsEveryStep(t *testing.T) {
	s, f, self := newPublisher(t, true)
	rec, err := s.Publish(t.Context(), Params{Path: writeModel(t, 3*int(content.MinChunkSize)+5), Price: "7"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Manifest.Name != "model.bin" || rec.Manifest.Chunks != 4 || rec.Price().Int64() != 7 || rec.Payee().Owner != "aaaaa-aa" {
		t.Errorf("manifest %+v", rec.Manifest)
	}
	if got := rec.Manifest.CoordinatorIDs(); len(got) != 1 || got[0] != self {
		t.Errorf("a coordinator's lineage names %v, want itself", got)
	}
	if rec.Root != rec || !f.stored[rec.ID] || f.complete[rec.ID] != 4 || f.published[rec.ID] != rec {
		t.Errorf("records: root self %v, stored %v, complete %d, published %v", rec.Root == rec, f.stored[rec.ID], f.complete[rec.ID], f.published[rec.ID] != nil)
	}
	k := f.keys[rec.ID]
	if err := k.CheckCommitment(rec.Manifest.KeyCommitment); err != nil {
		t.Errorf("the stored key does not match the manifest: %v", err)
	}
	if len(f.anchored) != 1 || len(f.escrowed) != 1 || len(f.announced) != 1 || len(f.provided) != 1 {
		t.Errorf("anchored %d, escrowed %d, announced %d, provided %d; want one each", len(f.anchored), len(f.escrowed), len(f.announced), len(f.provided))
	}
	bf, err := f.blobs.Open(rec.ID, blob.Layout{Size: rec.Manifest.Size, ChunkSize: rec.Manifest.ChunkSize, Chunks: rec.Manifest.Chunks})
	if err != nil {
		t.Fatalf("the blob is not under the ModelID: %v", err)
	}
	bf.Close()
}

// A version takes its root's price, payee and coordinators; a node the root does not authorise
// may not publish one.
func TestPublishVersion(t *testing.T) {
	s, f, _ := newPublisher(t, false)
	root, err := s.Publish(t.Context(), Params{Path: writeModel(t, 100), Price: "9"})
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Manifest.CoordinatorIDs()) != 0 {
		t.Errorf("a non-coordinator's lineage names %v by default, want none", root.Manifest.CoordinatorIDs())
	}
	v, err := s.PublishVersion(t.Context(), writeModel(t, 100), "v2", "aggregate", root.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Lineage() != root.ID || v.Price().Int64() != 9 || string(v.Manifest.Parent) != string(root.ID[:]) {
		t.Errorf("version: lineage %x price %v parent %x", v.Lineage(), v.Price(), v.Manifest.Parent)
	}
	other, _, _ := newPublisher(t, true)
	other.d.Catalog = f // knows the root, is not named by it
	if _, err := other.PublishVersion(t.Context(), writeModel(t, 100), "v2", "", root.ID); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("an unauthorised version = %v, want code %d", err, apierr.Role)
	}
	if _, err := s.PublishVersion(t.Context(), writeModel(t, 100), "v2", "", content.ModelID{1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a version of an unknown parent = %v, want not found", err)
	}
}

func TestPublishRefusals(t *testing.T) {
	s, f, _ := newPublisher(t, false)
	file := writeModel(t, 10)
	for _, tt := range []struct {
		name string
		p    Params
		code int
	}{
		{"relative path", Params{Path: "model.bin"}, apierr.InvalidParams},
		{"missing file", Params{Path: filepath.Join(t.TempDir(), "none")}, apierr.NotFound},
		{"directory", Params{Path: t.TempDir()}, apierr.InvalidParams},
		{"bad price", Params{Path: file, Price: "-1"}, apierr.InvalidParams},
		{"bad chunk size", Params{Path: file, ChunkSize: 1}, apierr.InvalidParams},
		{"too many coordinators", Params{Path: file, Coordinators: make([]peer.ID, content.MaxCoordinators+1)}, apierr.InvalidParams},
	} {
		if _, err := s.Publish(t.Context(), tt.p); apierr.CodeOf(err) != tt.code {
			t.Errorf("%s: %v, want code %d", tt.name, err, tt.code)
		}
	}
	s.cfg.IsPublisher = false
	if _, err := s.Publish(t.Context(), Params{Path: file}); apierr.CodeOf(err) != apierr.Role {
		t.Errorf("on a node that is not a publisher: %v", err)
	}
	if len(f.published) != 0 || len(f.anchored) != 0 {
		t.Errorf("a refused publish recorded something")
	}
}

// A failed transaction leaves no blob behind.
func TestPublishFailedRecordRemovesTheBlob(t *testing.T) {
	s, f, _ := newPublisher(t, false)
	f.failTx = errors.New("disk full")
	if _, err := s.Publish(t.Context(), Params{Path: writeModel(t, 10)}); err == nil {
		t.Fatal("publish with a failing store succeeded")
	}
	entries, _ := os.ReadDir(f.blobDir)
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}
