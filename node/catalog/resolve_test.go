package catalog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/node/content/contenttest"
	"github.com/califusion/califusion/protocols/apierr"
	catalogwire "github.com/califusion/califusion/protocols/catalog"
	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// resolveNet is a mocknet whose hosts are linked but not connected.
func resolveNet(t *testing.T, n int) (mocknet.Mocknet, []host.Host) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	var hs []host.Host
	for range n {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	return mn, hs
}

// resolver is a catalog on h that is not started: it syncs nothing, so what it learns it learns
// through Resolve.
func resolver(t *testing.T, h host.Host, r Routing) *Service {
	t.Helper()
	s, _ := newCatalog(t, Deps{Host: h, Routing: r})
	s.cfg.Self = h.ID()
	return s
}

// connect connects a to b and waits until a knows b speaks the catalog protocol.
func connect(t *testing.T, mn mocknet.Mocknet, a, b host.Host) {
	t.Helper()
	if _, err := mn.ConnectPeers(a.ID(), b.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if protos, _ := a.Peerstore().SupportsProtocols(b.ID(), catalogwire.ID); len(protos) == 0 {
			return errors.New("the peer is not identified yet")
		}
		return nil
	})
}

// lineage adds a root and n versions after it to s, returning their IDs, root first.
func lineage(t *testing.T, s *Service, pub contenttest.Signer, n int) []content.ModelID {
	t.Helper()
	signed, root := pub.Sign(t, contenttest.Version{})
	if _, _, err := s.Add(signed, "test"); err != nil {
		t.Fatal(err)
	}
	ids := []content.ModelID{root}
	for range n {
		parent := ids[len(ids)-1]
		signed, id := pub.Sign(t, contenttest.Version{Parent: &parent, Lineage: &root})
		if _, _, err := s.Add(signed, "test"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestResolveFromConnectedPeer(t *testing.T) {
	mn, hs := resolveNet(t, 2)
	a, b := netCatalog(t, hs[0]), resolver(t, hs[1], nil)
	ids := lineage(t, a, contenttest.NewSigner(t), 0)
	connect(t, mn, hs[1], hs[0])
	r, err := b.Resolve(t.Context(), ids[0])
	if err != nil || r.ID != ids[0] || r.Source != "resolve" {
		t.Fatalf("Resolve = %v, %v; want the model, from source resolve", r, err)
	}
	if got, err := b.Get(ids[0]); err != nil || got.ID != ids[0] {
		t.Errorf("Get after Resolve = %v, %v; want the model in the catalog", got, err)
	}
}

// A DHT provider the node is not connected to is dialled and asked.
func TestResolveFromDHTProvider(t *testing.T) {
	_, hs := resolveNet(t, 2)
	a := netCatalog(t, hs[0])
	ids := lineage(t, a, contenttest.NewSigner(t), 0)
	routing := &fakeRouting{providers: []peer.AddrInfo{{ID: hs[0].ID(), Addrs: hs[0].Addrs()}}}
	b := resolver(t, hs[1], routing)
	if len(hs[1].Network().Peers()) != 0 {
		t.Fatalf("the resolver is connected to %v, want nobody", hs[1].Network().Peers())
	}
	if r, err := b.Resolve(t.Context(), ids[0]); err != nil || r.ID != ids[0] {
		t.Fatalf("Resolve from a DHT provider = %v, %v; want the model", r, err)
	}
}

// A version is admitted only once its parents are: Resolve fetches the chain, root first.
func TestResolveParentChain(t *testing.T) {
	mn, hs := resolveNet(t, 2)
	a, b := netCatalog(t, hs[0]), resolver(t, hs[1], nil)
	ids := lineage(t, a, contenttest.NewSigner(t), 3)
	connect(t, mn, hs[1], hs[0])
	last := ids[len(ids)-1]
	r, err := b.Resolve(t.Context(), last)
	if err != nil || r.ID != last || r.Lineage() != ids[0] {
		t.Fatalf("Resolve(a third version) = %v, %v; want it, with lineage %x", r, err, ids[0][:4])
	}
	for i, id := range ids {
		r, err := b.Get(id)
		if err != nil {
			t.Errorf("version %d (%x) is not in the catalog after Resolve", i, id[:4])
			continue
		}
		if d := b.Depth(r); d != i+1 {
			t.Errorf("Depth(version %d) = %d, want %d", i, d, i+1)
		}
	}

	// Depth is bounded.
	defer func(d int) { ResolveMaxDepth = d }(ResolveMaxDepth)
	ResolveMaxDepth = 2
	more := lineage(t, a, contenttest.NewSigner(t), 3)
	_, err = b.Resolve(t.Context(), more[len(more)-1])
	if apierr.CodeOf(err) != apierr.NotFound || !strings.Contains(err.Error(), "more than 2 versions") {
		t.Errorf("Resolve past ResolveMaxDepth = %v, want NotFound naming the bound", err)
	}
}

// liar serves, for any request, a valid manifest that is not the one asked for.
func liar(t *testing.T, h host.Host, asked chan<- struct{}) {
	t.Helper()
	other := contenttest.NewSigner(t).Signed(t, contenttest.Version{})
	h.SetStreamHandler(catalogwire.ID, func(s network.Stream) {
		defer s.Close()
		var req catalogwire.Request
		wire.ReadFrame(s, catalogwire.MaxRequestSize, &req)
		if asked != nil {
			asked <- struct{}{}
		}
		wire.WriteFrame(s, &catalogwire.Entry{Manifest: other})
		wire.WriteFrame(s, &catalogwire.Entry{Done: true})
	})
}

func TestResolveRefusesWrongManifest(t *testing.T) {
	mn, hs := resolveNet(t, 3)
	honest := netCatalog(t, hs[0])
	asked := make(chan struct{}, 8)
	liar(t, hs[2], asked)
	b := resolver(t, hs[1], nil)
	ids := lineage(t, honest, contenttest.NewSigner(t), 0)
	connect(t, mn, hs[1], hs[2])

	// Only the liar is connected: its answer is refused and nothing is admitted.
	_, err := b.Resolve(t.Context(), ids[0])
	if apierr.CodeOf(err) != apierr.NotFound || b.Known(ids[0]) {
		t.Fatalf("Resolve from a liar = %v (known %v), want NotFound and nothing admitted", err, b.Known(ids[0]))
	}
	if len(asked) != 1 {
		t.Fatalf("the liar was asked %d times, want 1", len(asked))
	}
	<-asked
	// With an honest peer connected too, the model resolves, and the liar is not asked again.
	connect(t, mn, hs[1], hs[0])
	if r, err := b.Resolve(t.Context(), ids[0]); err != nil || r.ID != ids[0] {
		t.Fatalf("Resolve with an honest peer = %v, %v; want the model", r, err)
	}
	if len(asked) != 0 {
		t.Errorf("the liar was asked again after answering a wrong manifest")
	}
}

// Nobody knows the model: Resolve fails within its bound, with one sentence that says whom it
// asked; a peer that never answers costs at most ResolvePeerTimeout.
func TestResolveBoundedFailure(t *testing.T) {
	defer func(p, total time.Duration) { ResolvePeerTimeout, ResolveTimeout = p, total }(ResolvePeerTimeout, ResolveTimeout)
	ResolvePeerTimeout, ResolveTimeout = 300*time.Millisecond, 5*time.Second
	mn, hs := resolveNet(t, 3)
	netCatalog(t, hs[0]) // knows nothing
	hs[2].SetStreamHandler(catalogwire.ID, func(s network.Stream) {
		<-t.Context().Done() // hangs
		s.Reset()
	})
	routing := &fakeRouting{}
	b := resolver(t, hs[1], routing)
	connect(t, mn, hs[1], hs[0])
	connect(t, mn, hs[1], hs[2])
	var id content.ModelID
	id[0] = 0xab
	began := time.Now()
	_, err := b.Resolve(t.Context(), id)
	took := time.Since(began)
	want := fmt.Sprintf("no peer on the network knows model %s: asked 2 peers and the DHT", hex.EncodeToString(id[:]))
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.NotFound || ae.Message != want {
		t.Errorf("Resolve(unknown) = %v, want NotFound %q", err, want)
	}
	if took > ResolveTimeout {
		t.Errorf("Resolve(unknown) took %v, more than ResolveTimeout %v", took, ResolveTimeout)
	}
	if len(routing.asked) != 1 || routing.asked[0] != ModelCID(id) {
		t.Errorf("the DHT was asked for %v, want [%v]", routing.asked, ModelCID(id))
	}
}

func TestModelIDPrefixes(t *testing.T) {
	s, _ := newCatalog(t, Deps{})
	pub := contenttest.NewSigner(t)
	var ids []content.ModelID
	for range 17 { // two of 17 share their first hex digit
		signed, id := pub.Sign(t, contenttest.Version{})
		if _, _, err := s.Add(signed, "test"); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	full := hex.EncodeToString(ids[0][:])
	unknown := strings.Repeat("0", 64)
	tests := []struct {
		ref  string
		want content.ModelID
		code int
		msg  string
	}{
		{full, ids[0], 0, ""},
		{full[:MinPrefix], ids[0], 0, ""},
		{strings.ToUpper(full[:20]), ids[0], 0, ""},
		{unknown, content.ModelID{}, 0, ""}, // a full ID need not be known: Resolve looks it up
		{full[:MinPrefix-1], content.ModelID{}, apierr.InvalidParams, "too short"},
		{"xyz12345", content.ModelID{}, apierr.InvalidParams, "hex digits"},
		{full + "0", content.ModelID{}, apierr.InvalidParams, "hex digits"},
	}
	var none string
	for c := 0; ; c++ {
		p := fmt.Sprintf("%08x", c)
		if m, _ := s.Match(p); len(m) == 0 {
			none = p
			break
		}
	}
	tests = append(tests, struct {
		ref  string
		want content.ModelID
		code int
		msg  string
	}{none, content.ModelID{}, apierr.NotFound, "give the full 64-digit ID to look it up on the network"})
	for _, tt := range tests {
		got, err := s.ModelID(tt.ref)
		if tt.code == 0 && (err != nil || got != tt.want) {
			t.Errorf("ModelID(%q) = %x, %v; want %x", tt.ref, got[:4], err, tt.want[:4])
		}
		if tt.code != 0 && (apierr.CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.msg)) {
			t.Errorf("ModelID(%q) = %v, want code %d saying %q", tt.ref, err, tt.code, tt.msg)
		}
	}

	// An ambiguous prefix lists every match.
	defer func(n int) { minPrefix = n }(minPrefix)
	minPrefix = 1
	byDigit := map[byte][]string{}
	for _, id := range ids {
		h := hex.EncodeToString(id[:])
		byDigit[h[0]] = append(byDigit[h[0]], h)
	}
	for d, matches := range byDigit {
		if len(matches) < 2 {
			continue
		}
		_, err := s.ModelID(string(d))
		if apierr.CodeOf(err) != apierr.InvalidParams || !strings.Contains(err.Error(), "ambiguous") {
			t.Fatalf("ModelID(%q) = %v, want an ambiguous-prefix InvalidParams", string(d), err)
		}
		for _, m := range matches {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("ModelID(%q) = %v, which does not list the match %s", string(d), err, m)
			}
		}
		if got, _ := s.Match(string(d)); len(got) != len(matches) {
			t.Errorf("Match(%q) = %d records, want %d", string(d), len(got), len(matches))
		}
		break
	}
}

// A node still joining the network (connected to nobody yet) waits for a peer to ask.
func TestResolveWaitsForAFirstPeer(t *testing.T) {
	mn, hs := resolveNet(t, 2)
	a, b := netCatalog(t, hs[0]), resolver(t, hs[1], nil)
	ids := lineage(t, a, contenttest.NewSigner(t), 0)
	type result struct {
		r   *Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := b.Resolve(t.Context(), ids[0])
		done <- result{r, err}
	}()
	connect(t, mn, hs[1], hs[0])
	if got := <-done; got.err != nil || got.r.ID != ids[0] {
		t.Fatalf("Resolve before the first connection = %v, %v; want the model once a peer connects", got.r, got.err)
	}
}

// A peer's catalog is read as soon as it connects, and once more shortly after: a model it adds
// just after the first read arrives without the periodic resync (switched off here) or gossip
// (none here).
func TestSyncOnConnectAndFollowUp(t *testing.T) {
	defer func(d time.Duration) { catalogResync = d }(catalogResync)
	catalogResync = time.Hour
	mn, hs := resolveNet(t, 2)
	start := func(h host.Host) *Service {
		s, _ := newCatalog(t, Deps{Host: h})
		s.cfg.Self = h.ID()
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := start(hs[0]), start(hs[1])
	pub := contenttest.NewSigner(t)
	before := lineage(t, a, pub, 0)[0]
	if _, err := mn.ConnectPeers(hs[1].ID(), hs[0].ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if !b.Known(before) {
			return errors.New("the first sync on connecting did not bring the model")
		}
		return nil
	})
	after := lineage(t, a, pub, 0)[0]
	waitFor(t, 10*time.Second, func() error {
		if !b.Known(after) {
			return errors.New("the follow-up sync did not bring the model added after the first")
		}
		return nil
	})
}

// A node connected to nobody waits resolveJoinWait for a first peer, then says it asked nobody.
func TestResolveAloneGivesUp(t *testing.T) {
	defer func(d time.Duration) { resolveJoinWait = d }(resolveJoinWait)
	resolveJoinWait = 200 * time.Millisecond
	_, hs := resolveNet(t, 1)
	b := resolver(t, hs[0], nil)
	var id content.ModelID
	id[0] = 0xcd
	_, err := b.Resolve(t.Context(), id)
	want := fmt.Sprintf("no peer on the network knows model %s: asked 0 peers (no DHT)", hex.EncodeToString(id[:]))
	if apierr.CodeOf(err) != apierr.NotFound || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Resolve on a node alone = %v, want NotFound %q", err, want)
	}
}
