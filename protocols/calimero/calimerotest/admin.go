package calimerotest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mr-tron/base58"
)

// The admin API of shared/specs/CALIMERO.md §3 at HEAD: install, namespaces, contexts in them,
// invitations, joins, identities. Failures are {"error": "..."} with 400/403/404/500/503/504.
//
// Emulator choices where merod's behaviour is not pinned by the spec: a context is created only
// in a namespace that exists and that this node is a member of (404 / 403 otherwise); the
// invitation object is {"invitation":{"groupId","inviterIdentity","expirationTimestamp",
// "secretSalt"},"inviterSignature"}, signed by the emulator (HMAC) so a tampered or forged one is
// refused with 400; an invitation for a namespace that does not exist is 404.

type adminFault struct {
	status int
	count  int
}

// FailAdmin makes node answer the next count requests of the admin route pattern (as registered,
// e.g. "POST /admin-api/namespaces/{id}/join") with status and {"error": ...}: 504 is merod's
// "no member of the namespace reachable".
func (n *Node) FailAdmin(pattern string, status, count int) {
	n.mu.Lock()
	n.adminFaults[pattern] = adminFault{status, count}
	n.mu.Unlock()
}

// Calls returns how many requests node served on the admin route pattern (faults included).
func (n *Node) Calls(pattern string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[pattern]
}

func (n *Node) adminRoutes(mux *http.ServeMux) {
	handle := func(pattern string, fn http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			n.mu.Lock()
			n.calls[pattern]++
			f := n.adminFaults[pattern]
			fail := f.count > 0
			if fail {
				f.count--
				n.adminFaults[pattern] = f
			}
			n.mu.Unlock()
			if fail {
				writeAPIError(w, f.status, http.StatusText(f.status))
				return
			}
			fn(w, r)
		})
	}
	handle("POST /admin-api/install-dev-application", n.install)
	handle("POST /admin-api/install-application", n.install)
	handle("POST /admin-api/namespaces", n.createNamespace)
	handle("POST /admin-api/namespaces/{id}/invite", n.invite)
	handle("POST /admin-api/namespaces/{id}/join", n.joinNamespace)
	handle("POST /admin-api/contexts", n.createContext)
	handle("GET /admin-api/contexts", n.listContexts)
	handle("GET /admin-api/contexts/{id}", n.getContext)
	handle("POST /admin-api/contexts/{id}/join", n.joinContext)
	handle("GET /admin-api/contexts/{id}/identities-owned", n.identitiesOwned)
}

// decodeBody decodes a JSON request body into v; an empty body decodes as {}.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "Request body too large")
		return false
	}
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		writeAPIError(w, http.StatusBadRequest, "Invalid request body: "+err.Error())
		return false
	}
	return true
}

func isB58(s string) bool {
	b, err := base58.Decode(s)
	return err == nil && len(b) == 32
}

func isHex32(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

func (n *Node) install(w http.ResponseWriter, r *http.Request) {
	var req map[string]json.RawMessage
	if !decodeBody(w, r, &req) {
		return
	}
	writeData(w, map[string]string{"applicationId": randomB58()})
}

func (n *Node) createNamespace(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ApplicationID string `json:"applicationId"`
		Name          string `json:"name"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if !isB58(req.ApplicationID) {
		writeAPIError(w, http.StatusBadRequest, "Invalid application_id: expected base58-encoded 32 bytes")
		return
	}
	id := randomHex()
	n.sim.mu.Lock()
	n.sim.spaces[id] = &namespace{app: req.ApplicationID, members: map[int]bool{n.index: true}}
	n.sim.mu.Unlock()
	writeData(w, map[string]string{"namespaceId": id})
}

func (n *Node) createContext(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ApplicationID string `json:"applicationId"`
		GroupID       string `json:"groupId"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if !isHex32(req.GroupID) {
		writeAPIError(w, http.StatusBadRequest, "Invalid group_id: expected hex-encoded 32 bytes")
		return
	}
	if !isB58(req.ApplicationID) {
		writeAPIError(w, http.StatusBadRequest, "Invalid application_id: expected base58-encoded 32 bytes")
		return
	}
	id := randomB58()
	n.sim.mu.Lock()
	ns, ok := n.sim.spaces[req.GroupID]
	switch {
	case !ok:
		n.sim.mu.Unlock()
		writeAPIError(w, http.StatusNotFound, "Namespace not found")
		return
	case !ns.members[n.index]:
		n.sim.mu.Unlock()
		writeAPIError(w, http.StatusForbidden, "This node is not a member of the namespace")
		return
	}
	ns.contexts = append(ns.contexts, id)
	n.sim.ctxs[id] = &contextMeta{app: req.ApplicationID, group: req.GroupID}
	var members []*Node
	for i := range ns.members {
		members = append(members, n.sim.nodes[i])
	}
	n.sim.mu.Unlock()
	// Every member of the namespace follows its new context (auto-follow).
	for _, m := range members {
		m.mu.Lock()
		m.contexts[id] = map[string]entry{}
		m.mu.Unlock()
	}
	writeData(w, map[string]any{"contextId": id, "memberPublicKey": n.identity, "groupId": req.GroupID, "groupCreated": false})
}

// contextInfo is a context as GET /admin-api/contexts shows it.
func (n *Node) contextInfo(id string) map[string]string {
	n.sim.mu.Lock()
	meta := n.sim.ctxs[id]
	n.sim.mu.Unlock()
	app, group := DefaultApplication, ""
	if meta != nil {
		app, group = meta.app, meta.group
	}
	return map[string]string{"id": id, "applicationId": app, "contextStateHash": "11111111111111111111111111111111", "groupId": group}
}

func (n *Node) listContexts(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	ids := make([]string, 0, len(n.contexts))
	for id := range n.contexts {
		ids = append(ids, id)
	}
	n.mu.Unlock()
	list := []map[string]string{}
	for _, id := range ids {
		list = append(list, n.contextInfo(id))
	}
	writeData(w, map[string]any{"contexts": list})
}

func (n *Node) getContext(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !n.Member(id) {
		writeAPIError(w, http.StatusNotFound, "Context not found")
		return
	}
	writeData(w, n.contextInfo(id))
}

func (n *Node) identitiesOwned(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if n.Member(id) {
		writeData(w, map[string]any{"identities": []string{n.identity}})
		return
	}
	n.sim.mu.Lock()
	_, exists := n.sim.ctxs[id]
	n.sim.mu.Unlock()
	if !exists {
		writeAPIError(w, http.StatusNotFound, "Context not found")
		return
	}
	writeData(w, map[string]any{"identities": []string{}})
}

// invitationBody is the signed part of the emulator's invitation object.
type invitationBody struct {
	GroupID             string `json:"groupId"`
	InviterIdentity     string `json:"inviterIdentity"`
	ExpirationTimestamp int64  `json:"expirationTimestamp"`
	SecretSalt          string `json:"secretSalt"`
}

type invitation struct {
	Invitation       invitationBody `json:"invitation"`
	InviterSignature string         `json:"inviterSignature"`
}

func (s *Sim) signInvitation(b invitationBody) string {
	mac := hmac.New(sha256.New, s.secret)
	fmt.Fprintf(mac, "%s|%s|%d|%s", b.GroupID, b.InviterIdentity, b.ExpirationTimestamp, b.SecretSalt)
	return hex.EncodeToString(mac.Sum(nil))
}

func (n *Node) invite(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req struct {
		ExpirationTimestamp *int64 `json:"expirationTimestamp"` // validity in seconds
		Recursive           *bool  `json:"recursive"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if !isHex32(id) {
		writeAPIError(w, http.StatusBadRequest, "Invalid namespace_id: expected hex-encoded 32 bytes")
		return
	}
	n.sim.mu.Lock()
	ns, ok := n.sim.spaces[id]
	member := ok && ns.members[n.index]
	n.sim.mu.Unlock()
	switch {
	case !ok:
		writeAPIError(w, http.StatusNotFound, "Namespace not found")
		return
	case !member:
		writeAPIError(w, http.StatusForbidden, "This node is not a member of the namespace")
		return
	}
	validity := int64(365 * 24 * 3600)
	if req.ExpirationTimestamp != nil && *req.ExpirationTimestamp > 0 {
		validity = *req.ExpirationTimestamp
	}
	b := invitationBody{GroupID: id, InviterIdentity: n.identity, ExpirationTimestamp: n.sim.opts.Clock().Unix() + validity, SecretSalt: randomHex()}
	writeData(w, map[string]any{"invitation": invitation{Invitation: b, InviterSignature: n.sim.signInvitation(b)}})
}

func (n *Node) joinNamespace(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req struct {
		Invitation *json.RawMessage `json:"invitation"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Invitation == nil {
		writeAPIError(w, http.StatusBadRequest, "Invalid request body: missing field `invitation`")
		return
	}
	var inv invitation
	if err := json.Unmarshal(*req.Invitation, &inv); err != nil || inv.InviterSignature == "" {
		writeAPIError(w, http.StatusBadRequest, "Invalid invitation: not a signed group invitation")
		return
	}
	if !hmac.Equal([]byte(inv.InviterSignature), []byte(n.sim.signInvitation(inv.Invitation))) {
		writeAPIError(w, http.StatusBadRequest, "Invalid invitation: signature does not verify")
		return
	}
	if inv.Invitation.GroupID != id {
		writeAPIError(w, http.StatusBadRequest, "Invalid invitation: it is for namespace "+inv.Invitation.GroupID)
		return
	}
	if n.sim.opts.Clock().Unix() > inv.Invitation.ExpirationTimestamp {
		writeAPIError(w, http.StatusBadRequest, "Invalid invitation: expired at "+strconv.FormatInt(inv.Invitation.ExpirationTimestamp, 10))
		return
	}
	n.sim.mu.Lock()
	ns, ok := n.sim.spaces[id]
	if !ok {
		n.sim.mu.Unlock()
		writeAPIError(w, http.StatusNotFound, "Namespace not found")
		return
	}
	ns.members[n.index] = true
	contexts := append([]string(nil), ns.contexts...)
	n.sim.mu.Unlock()
	for _, c := range contexts {
		n.follow(c)
	}
	writeData(w, map[string]string{"namespaceId": id, "memberIdentity": n.identity, "memberAccount": hex.EncodeToString([]byte(n.identity))[:64]})
}

func (n *Node) joinContext(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n.sim.mu.Lock()
	meta, ok := n.sim.ctxs[id]
	member := ok && n.sim.spaces[meta.group] != nil && n.sim.spaces[meta.group].members[n.index]
	n.sim.mu.Unlock()
	switch {
	case !ok:
		writeAPIError(w, http.StatusNotFound, "Context not found")
		return
	case !member:
		writeAPIError(w, http.StatusForbidden, "This node is not a member of the context's namespace: join the namespace first")
		return
	}
	n.follow(id)
	writeData(w, map[string]string{"contextId": id, "memberPublicKey": n.identity})
}

// follow makes n a member of ctx: its replica starts empty and Uninitialized, and takes a
// snapshot of another member's replica after the replication delay (writes made meanwhile fold
// in as they replicate). A context n follows already is left alone.
func (n *Node) follow(ctx string) {
	n.mu.Lock()
	if _, ok := n.contexts[ctx]; ok {
		n.mu.Unlock()
		return
	}
	n.contexts[ctx] = map[string]entry{}
	n.pending[ctx] = true
	n.mu.Unlock()
	sync := func() {
		for _, other := range n.sim.nodes {
			if other == n {
				continue
			}
			other.mu.Lock()
			snap := make(map[string]entry, len(other.contexts[ctx]))
			for k, e := range other.contexts[ctx] {
				snap[k] = e
			}
			other.mu.Unlock()
			for k, e := range snap {
				n.apply(ctx, k, e)
			}
		}
		n.mu.Lock()
		delete(n.pending, ctx)
		n.mu.Unlock()
	}
	if d := n.sim.opts.ReplicationDelay; d > 0 {
		time.AfterFunc(d, sync)
	} else {
		sync()
	}
}
