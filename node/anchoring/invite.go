package anchoring

import (
	"context"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/calimero"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// ServeInvites answers calimero/invite/1 requests on srv (a coordinator's kex server).
func (s *Service) ServeInvites(srv *kex.Server) {
	kex.Answer(srv, calimero.PurposeInvite, calimero.MaxInviteMessage,
		&calimero.InviteReply{Code: apierr.InvalidParams, Message: "the invitation request does not decode"}, s.AnswerInvite)
}

func refuseInvite(code int, format string, args ...any) *calimero.InviteReply {
	e := apierr.Errorf(code, format, args...)
	return &calimero.InviteReply{Code: e.Code, Message: e.Message}
}

// AnswerInvite is the coordinator's side of an invitation request from peer from: it checks the
// asker may join the lineage's training context (Members) before anything else, limits how
// often one peer is answered, gets the lineage's training context (creating it when none
// exists yet), and asks its merod for an invitation into its namespace.
func (s *Service) AnswerInvite(ctx context.Context, from peer.ID, req *calimero.InviteRequest) *calimero.InviteReply {
	if err := req.Check(); err != nil {
		return refuseInvite(apierr.InvalidParams, "%v", err)
	}
	lineage := [32]byte(req.Lineage)
	if !s.tr.on || s.tr.deps.Members == nil {
		return refuseInvite(apierr.Unavailable, "this coordinator keeps no training contexts (calimero.training_contexts is off or no merod is configured): ask another coordinator of the lineage")
	}
	if !s.tr.deps.Members.MayJoin(lineage, from) {
		return refuseInvite(apierr.NotUnlocked, "you may not join the training context of lineage %x: pay for and unlock one of its models (model_unlock), then ask again", lineage[:6])
	}
	if !s.invites.allow(from) {
		return refuseInvite(apierr.Unavailable, "too many invitation requests from you: wait a few seconds and ask again")
	}
	if !s.tr.deps.Coordinators.Authorises(lineage, s.self) {
		return refuseInvite(apierr.Role, "this node is not a coordinator of lineage %x: ask one the lineage root names", lineage[:6])
	}
	t, err := s.ensure(ctx, lineage, true)
	if err != nil {
		s.log.Warn("invitation: no training context", "lineage", req.LineageHex(), "peer", from, "err", err)
		return refuseInvite(apierr.Unavailable, "the coordinator cannot provide the lineage's training context now: try again later")
	}
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	inv, err := s.client.Invite(ictx, t.NamespaceID)
	if err != nil {
		s.log.Warn("invitation: merod refused", "lineage", req.LineageHex(), "peer", from, "err", err)
		return refuseInvite(apierr.Unavailable, "the coordinator's Calimero node made no invitation: try again later")
	}
	s.log.Info("invited into the training context", "lineage", req.LineageHex(), "peer", from, "context", t.ContextID)
	return &calimero.InviteReply{Invitation: inv, NamespaceID: t.NamespaceID, ContextID: t.ContextID}
}

// KexInviter asks coordinators for invitations over kex sessions from h.
func KexInviter(h host.Host) Inviter { return kexInviter{h} }

type kexInviter struct{ h host.Host }

// RequestInvite sends the request and checks the reply; a refusal is an *apierr.Error with the
// coordinator's code and message.
func (k kexInviter) RequestInvite(ctx context.Context, coordinator peer.ID, lineage [32]byte) (*calimero.InviteReply, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var rep calimero.InviteReply
	if err := kex.Call(ctx, k.h, coordinator, calimero.PurposeInvite, &calimero.InviteRequest{Lineage: lineage[:]}, &rep, calimero.MaxInviteMessage); err != nil {
		return nil, apierr.Errorf(apierr.Unavailable, "coordinator %s did not answer the invitation request for lineage %s: %v", coordinator, hex.EncodeToString(lineage[:6]), err)
	}
	return checkedReply(&rep)
}

// checkedReply turns a reply into the invitation or the coordinator's refusal.
func checkedReply(rep *calimero.InviteReply) (*calimero.InviteReply, error) {
	if err := rep.Check(); err != nil {
		return nil, errors.New("the coordinator's invitation reply is malformed: " + err.Error())
	}
	if rep.Code != 0 {
		return nil, &apierr.Error{Code: rep.Code, Message: "coordinator refused the invitation: " + rep.Message}
	}
	return rep, nil
}

// limiter is a per-peer token bucket with a bounded number of peers.
type limiter struct {
	every time.Duration
	burst int
	mu    sync.Mutex
	peers map[peer.ID]*rate.Limiter
}

const maxLimitedPeers = 4096

func newLimiter(every time.Duration, burst int) *limiter {
	return &limiter{every: every, burst: burst, peers: map[peer.ID]*rate.Limiter{}}
}

func (l *limiter) allow(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.peers[p]
	if !ok {
		if len(l.peers) >= maxLimitedPeers {
			clear(l.peers) // forget everyone rather than grow without bound
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.peers[p] = lim
	}
	return lim.Allow()
}
