package calimero

import (
	"encoding/hex"
	"fmt"
)

// The invite purpose: a trainer that paid for a lineage (or a fellow coordinator) asks one of
// the lineage's coordinators, over an authenticated kex session (protocols/kex), for an
// invitation into the lineage's training context:
//
//	invite  trainer → coordinator  InviteRequest{lineage}  → InviteReply{invitation, namespace, context}
//
// The coordinator checks the asker may join BEFORE it calls its merod (node/anchoring). A
// refusal is a Code from protocols/apierr with one sentence saying what to do. The invitation is
// merod's, opaque JSON; the asker's node joins with it on its own merod.

// PurposeInvite is the kex session purpose of an invitation request.
const PurposeInvite = "calimero/invite/1"

// MaxInviteMessage caps one invite message (a request is ~40 bytes; a reply holds an invitation
// of at most MaxInvitation bytes).
const MaxInviteMessage = MaxInvitation + 1024

// InviteRequest asks for an invitation into the training context of Lineage.
type InviteRequest struct {
	Lineage []byte `cbor:"1,keyasint"`
}

// Check reports whether the request is well formed.
func (r *InviteRequest) Check() error {
	if len(r.Lineage) != 32 {
		return fmt.Errorf("lineage must be a 32-byte ModelID, not %d bytes", len(r.Lineage))
	}
	return nil
}

// InviteReply answers an InviteRequest: Code 0 with the invitation, or a refusal.
type InviteReply struct {
	Code        int    `cbor:"1,keyasint,omitempty"`
	Message     string `cbor:"2,keyasint,omitempty"`
	Invitation  []byte `cbor:"3,keyasint,omitempty"` // merod's invitation JSON, verbatim
	NamespaceID string `cbor:"4,keyasint,omitempty"` // 64 hex
	ContextID   string `cbor:"5,keyasint,omitempty"` // base58
}

// Check reports whether a successful reply is usable: an invitation object, a namespace and a
// context ID in merod's encodings. A refusal (Code != 0) needs only a message of bounded size.
func (r *InviteReply) Check() error {
	if r.Code != 0 {
		if len(r.Message) > 1024 {
			return fmt.Errorf("refusal message of %d bytes", len(r.Message))
		}
		return nil
	}
	if err := CheckInvitation(r.Invitation); err != nil {
		return err
	}
	if !isHexID(r.NamespaceID) {
		return fmt.Errorf("namespace id %q is not 64 hex", snippet([]byte(r.NamespaceID)))
	}
	if !isBase58ID(r.ContextID) {
		return fmt.Errorf("context id %q is not base58 of 32 bytes", snippet([]byte(r.ContextID)))
	}
	return nil
}

// LineageHex is the lineage as the logs print it.
func (r *InviteRequest) LineageHex() string { return hex.EncodeToString(r.Lineage) }
