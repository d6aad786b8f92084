package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/node/content"
	"github.com/califusion/califusion/protocols/apierr"
	catalogwire "github.com/califusion/califusion/protocols/catalog"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// Bounds of Resolve. Tests change them.
var (
	// ResolveTimeout bounds one Resolve, the parent chain included.
	ResolveTimeout = 20 * time.Second
	// ResolvePeerTimeout bounds one peer's answer to one by-ID request.
	ResolvePeerTimeout = 5 * time.Second
	// ResolveMaxPeers bounds the peers asked for one manifest (connected peers first, then DHT
	// providers as they are found).
	ResolveMaxPeers = 16
	// ResolveMaxDepth bounds the versions of a lineage one Resolve fetches to reach a parent the
	// catalog has.
	ResolveMaxDepth = 1024
)

// MinPrefix is the fewest hex digits a model ID prefix may have.
const MinPrefix = 8

// minPrefix is MinPrefix; tests lower it to make ambiguous prefixes.
var minPrefix = MinPrefix

// Resolve returns model id's catalog entry, asking the network for it when the catalog does not
// have it: the connected peers that speak the catalog protocol and the DHT providers of
// ModelCID(id) are asked, in parallel, for its signed manifest by ID. An answer is admitted as
// Add admits any manifest (signature, ID = hash, lineage); since a version is admitted only once
// its parent is, the missing parents are fetched first, up to ResolveMaxDepth of them. A peer
// that answers a manifest whose hash is not the ID asked for is not asked again. The whole
// search takes at most ResolveTimeout; when it finds nothing, the error is an *apierr.Error with
// code NotFound saying how many peers were asked.
func (s *Service) Resolve(ctx context.Context, id content.ModelID) (*Record, error) {
	if r, err := s.Get(id); err == nil {
		return r, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	rs := &resolution{asked: map[peer.ID]bool{}}
	// chain[0] is id's manifest, chain[i+1] the parent of chain[i]; the last one's parent is in
	// the catalog (or it is a root).
	var chain [][]byte
	want, from := id, peer.ID("")
	for depth := 0; ; depth++ {
		if depth == ResolveMaxDepth {
			return nil, apierr.Errorf(apierr.NotFound, "model %s has more than %d versions before one this node knows: it was not resolved", hex.EncodeToString(id[:]), ResolveMaxDepth)
		}
		signed, p, err := s.askNetwork(ctx, want, from, rs)
		if err != nil {
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, ctx.Err() // the caller gave up
			}
			if want != id {
				return nil, apierr.Errorf(apierr.NotFound, "no peer on the network knows model %s, a parent of model %s: %s", hex.EncodeToString(want[:]), hex.EncodeToString(id[:]), rs.summary())
			}
			return nil, apierr.Errorf(apierr.NotFound, "no peer on the network knows model %s: %s", hex.EncodeToString(id[:]), rs.summary())
		}
		chain = append(chain, signed)
		man, _, err := content.Open(signed)
		if err != nil { // the bytes hash to the ID, so the ID itself names a bad manifest
			return nil, &apierr.Error{Code: apierr.Integrity, Message: fmt.Sprintf("model %s was found on the network but its manifest does not verify: it cannot be used", hex.EncodeToString(want[:])), Data: err.Error()}
		}
		if man.IsRoot() {
			break
		}
		if _, err := s.Get(content.ModelID(man.Parent)); err == nil { // verified, lineage and all
			break
		}
		want, from = content.ModelID(man.Parent), p // the peer that had the child has its parent
	}
	var rec *Record
	for i := len(chain) - 1; i >= 0; i-- {
		r, _, err := s.Add(chain[i], "resolve")
		if err != nil {
			got := sha256.Sum256(chain[i])
			return nil, &apierr.Error{Code: apierr.Integrity, Message: fmt.Sprintf("model %s was found on the network but refused: %v", hex.EncodeToString(got[:]), err), Data: err.Error()}
		}
		rec = r
	}
	return rec, nil
}

// resolution is the state of one Resolve: the peers asked so far, and whether the DHT was.
type resolution struct {
	mu    sync.Mutex
	asked map[peer.ID]bool
	dht   bool
}

func (rs *resolution) summary() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	n := len(rs.asked)
	peers := fmt.Sprintf("%d peers", n)
	if n == 1 {
		peers = "1 peer"
	}
	if rs.dht {
		return "asked " + peers + " and the DHT"
	}
	return "asked " + peers + " (no DHT)"
}

// resolveGrace is how long a lookup that asked every peer it knew in vain waits for a peer that
// connects afterwards before it gives up, and resolveJoinWait how long one that could ask nobody
// (a node still joining the network, or alone) waits for a first peer.
var (
	resolveGrace    = 2 * time.Second
	resolveJoinWait = 5 * time.Second
)

// askNetwork asks up to ResolveMaxPeers peers for want's signed manifest: the peer prefer first,
// the connected catalog peers, and the DHT providers of want as they are found; when none had
// it, it asks again as new peers are identified (see resolveGrace and resolveJoinWait). It returns the first answer
// whose hash is want, and the peer that gave it.
func (s *Service) askNetwork(ctx context.Context, want content.ModelID, prefer peer.ID, rs *resolution) ([]byte, peer.ID, error) {
	h := s.d.Host
	if h == nil {
		return nil, "", errors.New("no host")
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted), eventbus.BufSize(64))
	if err != nil {
		return nil, "", err
	}
	defer sub.Close()
	started := map[peer.ID]bool{}
	for {
		signed, from, err := s.askRound(ctx, want, prefer, rs, started)
		if err == nil || ctx.Err() != nil || len(started) >= ResolveMaxPeers {
			return signed, from, err
		}
		wait := resolveJoinWait
		if len(started) > 0 {
			wait = resolveGrace
		}
		grace := time.After(wait)
		select {
		case <-ctx.Done():
			return nil, "", err
		case <-grace:
			return nil, "", err
		case <-sub.Out(): // a new peer may know it
		}
	}
}

// askRound is one round of askNetwork: it asks the peers not in started (and adds them).
func (s *Service) askRound(ctx context.Context, want content.ModelID, prefer peer.ID, rs *resolution, started map[peer.ID]bool) ([]byte, peer.ID, error) {
	h := s.d.Host
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		signed []byte
		from   peer.ID
	}
	results := make(chan answer)
	pending := 0
	ask := func(p peer.ID) {
		if p == "" || p == s.cfg.Self || started[p] || len(started) >= ResolveMaxPeers || s.distrusted(p) {
			return
		}
		started[p] = true
		rs.mu.Lock()
		rs.asked[p] = true
		rs.mu.Unlock()
		pending++
		go func() {
			signed := s.askPeer(ctx, p, want)
			select {
			case results <- answer{signed, p}:
			case <-ctx.Done():
			}
		}()
	}
	ask(prefer)
	s.mu.Lock()
	var announcers []peer.ID
	for p := range s.announced[want] {
		announcers = append(announcers, p)
	}
	s.mu.Unlock()
	for _, p := range announcers {
		ask(p)
	}
	for _, p := range h.Network().Peers() {
		if protos, err := h.Peerstore().SupportsProtocols(p, catalogwire.ID); err == nil && len(protos) > 0 {
			ask(p)
		}
	}
	var providers <-chan peer.AddrInfo
	if s.d.Routing != nil {
		rs.mu.Lock()
		rs.dht = true
		rs.mu.Unlock()
		providers = s.d.Routing.FindProvidersAsync(ctx, ModelCID(want), ResolveMaxPeers)
	}
	for pending > 0 || providers != nil {
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case ai, ok := <-providers:
			if !ok {
				providers = nil
				continue
			}
			if ai.ID != s.cfg.Self && len(ai.Addrs) > 0 {
				h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
			}
			ask(ai.ID)
		case a := <-results:
			pending--
			if a.signed != nil {
				return a.signed, a.from, nil
			}
		}
	}
	return nil, "", errors.New("nobody answered")
}

// askPeer asks p for want's signed manifest by ID, within ResolvePeerTimeout. A peer that
// answers a manifest that is not want's is distrusted from then on.
func (s *Service) askPeer(ctx context.Context, p peer.ID, want content.ModelID) []byte {
	ctx, cancel := context.WithTimeout(ctx, ResolvePeerTimeout)
	defer cancel()
	var got []byte
	_, refused, err := catalogwire.Manifests(ctx, s.d.Host, p, [][32]byte{want}, func(signed []byte) error {
		got = signed // Manifests passes on only a manifest whose hash is want
		return nil
	})
	if refused > 0 {
		s.distrust(p)
		s.log.Info("peer answered a manifest that was not asked for: not asked again", "peer", p, "model", hex.EncodeToString(want[:]))
		return nil
	}
	if err != nil {
		s.log.Debug("resolve model", "peer", p, "model", hex.EncodeToString(want[:]), "err", err)
	}
	return got
}

// distrust remembers a peer that lied to Resolve (a bounded set: beyond limiterPeers the oldest
// memory is dropped wholesale).
func (s *Service) distrust(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.liars == nil || len(s.liars) >= limiterPeers {
		s.liars = map[peer.ID]bool{}
	}
	s.liars[p] = true
}

func (s *Service) distrusted(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.liars[p]
}

// Match returns the catalog entries whose hex model ID starts with prefix (lower or upper case),
// sorted by ID.
func (s *Service) Match(prefix string) ([]*Record, error) {
	prefix = strings.ToLower(prefix)
	var out []*Record
	seen := map[[32]byte]bool{}
	err := s.index.Added(time.Time{}, func(id [32]byte, _ time.Time) bool {
		if !seen[id] && strings.HasPrefix(hex.EncodeToString(id[:]), prefix) {
			seen[id] = true
			if r, err := s.Get(id); err == nil {
				out = append(out, r)
			}
		}
		return true
	})
	sort.Slice(out, func(i, j int) bool { return string(out[i].ID[:]) < string(out[j].ID[:]) })
	return out, err
}

// ModelID turns what a user typed into a model ID: 64 hex digits as they are (the model need not
// be in the catalog), or a prefix of at least MinPrefix hex digits that names exactly one model in
// the catalog. The errors are *apierr.Error: InvalidParams for what is not hex, too short, or
// ambiguous (listing the matches), NotFound for a prefix that matches nothing.
func (s *Service) ModelID(ref string) (content.ModelID, error) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if _, err := hex.DecodeString(ref + strings.Repeat("0", len(ref)%2)); err != nil || len(ref) > 64 {
		return content.ModelID{}, apierr.Errorf(apierr.InvalidParams, "model_id %q must be 64 hex digits, or a unique prefix of at least %d", ref, MinPrefix)
	}
	if len(ref) == 64 {
		raw, _ := hex.DecodeString(ref)
		return content.ModelID(raw), nil
	}
	if len(ref) < minPrefix {
		return content.ModelID{}, apierr.Errorf(apierr.InvalidParams, "model ID prefix %q is too short: give at least %d hex digits", ref, minPrefix)
	}
	recs, err := s.Match(ref)
	if err != nil {
		return content.ModelID{}, err
	}
	switch len(recs) {
	case 0:
		return content.ModelID{}, apierr.Errorf(apierr.NotFound, "no model in this node's catalog starts with %s: a prefix names only models this node knows; give the full 64-digit ID to look it up on the network", ref)
	case 1:
		return recs[0].ID, nil
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = hex.EncodeToString(r.ID[:])
	}
	return content.ModelID{}, &apierr.Error{Code: apierr.InvalidParams, Message: fmt.Sprintf("model ID prefix %s is ambiguous: it matches %s; give more digits", ref, strings.Join(ids, ", ")), Data: ids}
}

// Lookup returns the catalog entry of the model ref names (ModelID), resolving a full ID this
// node does not know from the network (Resolve).
func (s *Service) Lookup(ctx context.Context, ref string) (*Record, error) {
	id, err := s.ModelID(ref)
	if err != nil {
		return nil, err
	}
	return s.Resolve(ctx, id)
}

// Depth returns r's place in its lineage: 1 for a root, its parent's depth + 1 (0 when a parent is
// missing, which a verified record never lacks).
func (s *Service) Depth(r *Record) int {
	var chain []content.ModelID // r and its ancestors whose depth is not known yet
	depth := 0
	for cur := r; ; {
		if d, ok := s.depths.Load(cur.ID); ok {
			depth = d.(int)
			break
		}
		chain = append(chain, cur.ID)
		if cur.Manifest.IsRoot() {
			break
		}
		parent, err := s.Get(content.ModelID(cur.Manifest.Parent))
		if err != nil || len(chain) > 1<<20 {
			return 0
		}
		cur = parent
	}
	for i := len(chain) - 1; i >= 0; i-- {
		depth++
		s.depths.Store(chain[i], depth)
	}
	return depth
}
