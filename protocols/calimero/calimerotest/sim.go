// Package calimerotest is an in-process Calimero emulator for tests and the devnet, shipped beside
// the client it emulates the way net/http/httptest ships beside net/http. It serves the part of
// merod's HTTP API that califusiond uses, in the HEAD (0.11) wire format of
// shared/specs/CALIMERO.md: JSON-RPC `execute` on contexts running the kv-store app, the admin
// endpoints that create namespaces and contexts in them, invite other nodes into a namespace and
// join it (the joiner follows the namespace's contexts and serves execute on them only once the
// replication delay has passed; before that it answers Uninitialized; a node that is not a member
// of a context answers "No owned identity found for this context"), both auth modes (proxy: open; embedded: /auth/token,
// /auth/refresh with single-use refresh tokens) with an injectable clock, and several member nodes
// of one context whose writes replicate to each other after a configurable delay, last writer
// wins, so clients are tested against read-after-write lag.
package calimerotest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mr-tron/base58"
)

// Options configure a Sim.
type Options struct {
	Nodes            int               // emulated merod nodes (default 1)
	Users            map[string]string // username → password; non-empty turns embedded auth on
	AccessTTL        time.Duration     // access token lifetime (default 1 h)
	ReplicationDelay time.Duration     // delay before a write reaches the other members
	Clock            func() time.Time  // default time.Now
}

// Sim is a set of emulated merod nodes sharing contexts.
type Sim struct {
	opts   Options
	secret []byte // signs invitations (HMAC), so a tampered one is refused
	mu     sync.Mutex
	nodes  []*Node
	ctxs   map[string]*contextMeta // context IDs that exist
	spaces map[string]*namespace   // namespace (group) IDs that exist
	seq    uint64                  // write sequence, the LWW tie-breaker
}

// DefaultApplication is the application ID of contexts made by Sim.CreateContext: the kv-store
// "installed" on every node.
const DefaultApplication = "HtsBz6JMseH7GQkDHt3VNYPjXVYxPqhrVv5GbW4GKUEd"

type contextMeta struct {
	app   string
	group string
}

type namespace struct {
	app      string
	members  map[int]bool // node indexes
	contexts []string
}

// Node is one emulated merod: its HTTP server and its replica of every context it is a member of.
type Node struct {
	sim      *Sim
	index    int
	srv      *http.Server
	ln       net.Listener
	identity string // base58 public key, the executor identity in every context

	mu          sync.Mutex
	contexts    map[string]map[string]entry // context → key → value
	pending     map[string]bool             // joined contexts not synced yet (Uninitialized)
	faults      map[string]fault            // context → transient error to answer with
	calls       map[string]int              // admin route pattern → requests served
	adminFaults map[string]adminFault       // admin route pattern → error to answer with
	auth        *authState
}

type entry struct {
	value   string
	seq     uint64
	deleted bool
}

// New starts opts.Nodes emulated nodes on 127.0.0.1.
func New(opts Options) (*Sim, error) {
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Sim{opts: opts, ctxs: map[string]*contextMeta{}, spaces: map[string]*namespace{}, secret: make([]byte, 32)}
	rand.Read(s.secret)
	for i := 0; i < opts.Nodes; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.Close()
			return nil, err
		}
		n := &Node{sim: s, index: i, ln: ln, identity: randomB58(), contexts: map[string]map[string]entry{}, pending: map[string]bool{}, faults: map[string]fault{},
			calls: map[string]int{}, adminFaults: map[string]adminFault{}}
		if len(opts.Users) > 0 {
			n.auth = newAuth(opts)
		}
		n.srv = &http.Server{Handler: n.routes(), ReadHeaderTimeout: 10 * time.Second}
		go n.srv.Serve(ln)
		s.nodes = append(s.nodes, n)
	}
	return s, nil
}

// Close stops every node.
func (s *Sim) Close() error {
	for _, n := range s.nodes {
		n.srv.Close()
	}
	return nil
}

// Node returns node i.
func (s *Sim) Node(i int) *Node { return s.nodes[i] }

// URL returns node 0's base URL.
func (s *Sim) URL() string { return s.nodes[0].URL() }

// URL returns the node's base URL.
func (n *Node) URL() string { return "http://" + n.ln.Addr().String() }

// Identity returns the node's member public key (base58), its executorPublicKey.
func (n *Node) Identity() string { return n.identity }

// CreateContext creates a kv-store context (of DefaultApplication, in a namespace of its own)
// that every node is a member of and returns its ID.
func (s *Sim) CreateContext() string {
	id, group := randomB58(), randomHex()
	s.mu.Lock()
	ns := &namespace{app: DefaultApplication, members: map[int]bool{}, contexts: []string{id}}
	for i := range s.nodes {
		ns.members[i] = true
	}
	s.spaces[group] = ns
	s.ctxs[id] = &contextMeta{app: DefaultApplication, group: group}
	s.mu.Unlock()
	for _, n := range s.nodes {
		n.mu.Lock()
		n.contexts[id] = map[string]entry{}
		n.mu.Unlock()
	}
	return id
}

// Entries returns node n's replica of ctx (nil when n is not a member): what a test reads to
// check a write reached that node.
func (n *Node) Entries(ctx string) map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	kv, ok := n.contexts[ctx]
	if !ok {
		return nil
	}
	out := map[string]string{}
	for k, e := range kv {
		if !e.deleted {
			out[k] = e.value
		}
	}
	return out
}

// Member reports whether node n has joined ctx.
func (n *Node) Member(ctx string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.contexts[ctx]
	return ok
}

type fault struct {
	errType string
	count   int
}

// SetFault makes node answer the next count executes on ctx with an error of errType, e.g.
// "Uninitialized" (joined, not synced yet) or "GroupKeyPending".
func (n *Node) SetFault(ctx, errType string, count int) {
	n.mu.Lock()
	n.faults[ctx] = fault{errType, count}
	n.mu.Unlock()
}

// Overwrite writes key=value on ctx as this node would for any member: the way another member
// can replace an anchor. It replicates like any write.
func (n *Node) Overwrite(ctx, key, value string) { n.write(ctx, key, value, false) }

// write applies a write locally at once and on the other members after the replication delay.
func (n *Node) write(ctx, key, value string, deleted bool) {
	n.sim.mu.Lock()
	n.sim.seq++
	e := entry{value: value, seq: n.sim.seq, deleted: deleted}
	n.sim.mu.Unlock()
	n.apply(ctx, key, e)
	for _, other := range n.sim.nodes {
		if other == n {
			continue
		}
		if d := n.sim.opts.ReplicationDelay; d > 0 {
			time.AfterFunc(d, func() { other.apply(ctx, key, e) })
		} else {
			other.apply(ctx, key, e)
		}
	}
}

// apply folds a write into this replica, last writer (highest sequence) wins.
func (n *Node) apply(ctx, key string, e entry) {
	n.mu.Lock()
	defer n.mu.Unlock()
	kv, ok := n.contexts[ctx]
	if !ok {
		return
	}
	if cur, ok := kv[key]; ok && cur.seq > e.seq {
		return
	}
	kv[key] = e
}

func randomB58() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base58.Encode(b)
}

func randomHex() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}
