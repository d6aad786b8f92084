package calimero

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TrainingPrefix is the catalog-context key prefix of training-context records. A record lives
// under TrainingKey(lineage, coordinator): one key per coordinator, so two coordinators that
// create a context at the same moment do not overwrite each other; readers take the earliest.
const TrainingPrefix = "califusion/training/v1/"

const trainingContext = "califusion/training/v1"

// TrainingKey returns the catalog-context key of coordinator's training record for lineage.
func TrainingKey(lineage [32]byte, coordinator peer.ID) string {
	return TrainingPrefix + hex.EncodeToString(lineage[:]) + "/" + coordinator.String()
}

// TrainingLineagePrefix returns the key prefix of every training record of lineage.
func TrainingLineagePrefix(lineage [32]byte) string {
	return TrainingPrefix + hex.EncodeToString(lineage[:]) + "/"
}

// TrainingRecord names a lineage's training context: the Calimero context (and its namespace)
// where the lineage's round commitments, masked-input commitments and aggregates are anchored.
// A coordinator of the lineage signs it and anchors it in the catalog context.
type TrainingRecord struct {
	Lineage     []byte `cbor:"1,keyasint"` // the lineage root's ModelID
	ContextID   string `cbor:"2,keyasint"` // base58
	NamespaceID string `cbor:"3,keyasint"` // 64 hex
	Coordinator []byte `cbor:"4,keyasint"` // peer ID of the signer, who can invite
	CreatedAt   int64  `cbor:"5,keyasint"` // unix milliseconds
}

type signedTraining struct {
	Body      []byte `cbor:"1,keyasint"`
	Signature []byte `cbor:"2,keyasint"`
}

// MaxTrainingRecord caps a training record's encoding.
const MaxTrainingRecord = 4 << 10

func (r *TrainingRecord) check() error {
	switch {
	case len(r.Lineage) != 32:
		return fmt.Errorf("%w: training record needs a 32-byte lineage", ErrCommitment)
	case !isBase58ID(r.ContextID):
		return fmt.Errorf("%w: training record context id is not base58 of 32 bytes", ErrCommitment)
	case !isHexID(r.NamespaceID):
		return fmt.Errorf("%w: training record namespace id is not 64 hex", ErrCommitment)
	case r.CreatedAt <= 0:
		return fmt.Errorf("%w: training record created_at is missing", ErrCommitment)
	}
	if _, err := peer.IDFromBytes(r.Coordinator); err != nil {
		return fmt.Errorf("%w: training record coordinator: %v", ErrCommitment, err)
	}
	return nil
}

// SignTraining sets r's coordinator from key, signs r and returns the kv-store value (base64 of
// the signed CBOR) to store under TrainingKey.
func SignTraining(r *TrainingRecord, key crypto.PrivKey) (string, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", err
	}
	r.Coordinator = []byte(id)
	if err := r.check(); err != nil {
		return "", err
	}
	body, err := wire.Marshal(r)
	if err != nil {
		return "", err
	}
	sig, err := key.Sign(append([]byte(trainingContext), body...))
	if err != nil {
		return "", err
	}
	b, err := wire.Marshal(signedTraining{Body: body, Signature: sig})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// OpenTraining decodes the value stored under key and verifies it: the coordinator's signature,
// and that key is TrainingKey of the record's own lineage and coordinator (a record copied under
// another lineage's key is refused). Whether the coordinator may speak for the lineage is the
// caller's check (the lineage root names its coordinators).
func OpenTraining(key, value string) (*TrainingRecord, error) {
	if base64.StdEncoding.DecodedLen(len(value)) > MaxTrainingRecord {
		return nil, fmt.Errorf("%w: training record too large", ErrCommitment)
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("%w: training record is not base64: %v", ErrCommitment, err)
	}
	var s signedTraining
	if err := wire.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCommitment, err)
	}
	var r TrainingRecord
	if err := wire.Unmarshal(s.Body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCommitment, err)
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	coord, _ := peer.IDFromBytes(r.Coordinator) // checked
	if key != TrainingKey([32]byte(r.Lineage), coord) {
		return nil, fmt.Errorf("%w: training record stored under another key", ErrCommitment)
	}
	pub, err := coord.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: coordinator key: %v", ErrCommitment, err)
	}
	if ok, err := pub.Verify(append([]byte(trainingContext), s.Body...), s.Signature); err != nil || !ok {
		return nil, fmt.Errorf("%w: training record signature does not verify", ErrCommitment)
	}
	return &r, nil
}

// CoordinatorID returns the record's coordinator (checked by OpenTraining and SignTraining).
func (r *TrainingRecord) CoordinatorID() peer.ID {
	id, _ := peer.IDFromBytes(r.Coordinator)
	return id
}

// IsTrainingKey reports whether a kv-store key is a training record's.
func IsTrainingKey(k string) bool { return strings.HasPrefix(k, TrainingPrefix) }
