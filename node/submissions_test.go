package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/califusion/califusion/protocols/updates"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testSubmit is an update as a trainer would submit it, for tests that drive the coordinator in
// process.
type testSubmit struct {
	Round   string
	Samples uint64
	SHA256  []byte
	Update  []byte
}

func newSubmit(round string, samples uint64, update []byte) *testSubmit {
	sum := sha256.Sum256(update)
	return &testSubmit{Round: round, Samples: samples, SHA256: sum[:], Update: update}
}

// handleSubmit runs a submission through the coordinator's steps as updates/submit/2 does:
// decide on the header, spool the body to a file and check its hash, accept, release.
func (rs *rounds) handleSubmit(ctx context.Context, from peer.ID, s *testSubmit) *updates.Receipt {
	st := &updates.Statement{Round: s.Round, Samples: s.Samples, SHA256: s.SHA256, Size: uint64(len(s.Update)), Trainer: from.String(), Coordinator: rs.n.host.ID().String()}
	if r := rs.decide(ctx, from, st); r != nil {
		return r
	}
	defer rs.release(from, st)
	if sum := sha256.Sum256(s.Update); !bytes.Equal(sum[:], s.SHA256) {
		return &updates.Receipt{Code: adminrpc.CodeIntegrity, Message: updates.ErrHash.Error()}
	}
	dir := rs.n.dir.Join(RoundsDir, incomingDir)
	os.MkdirAll(dir, 0o700)
	f, err := os.CreateTemp(dir, "submit-*.part")
	if err != nil {
		return receipt(adminrpc.CodeInternal, "%v", err)
	}
	f.Write(s.Update)
	f.Close()
	defer os.Remove(f.Name())
	return rs.accept(ctx, from, &updates.Upload{Statement: st, Header: &updates.Header{}, Path: filepath.Clean(f.Name())})
}
