package keys

import (
	"context"

	"github.com/califusion/califusion/protocols/kex"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Request opens a session for purpose to p, sends msg and returns the Result; a refusal is an
// *Error. It waits at most StreamTimeout, or less as ctx says.
func Request(ctx context.Context, h host.Host, p peer.ID, purpose string, msg any) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	var res Result
	if err := kex.Call(ctx, h, p, purpose, msg, &res, MaxMessage); err != nil {
		return nil, err
	}
	if res.Code != 0 {
		return nil, &Error{Code: res.Code, Message: res.Message}
	}
	return &res, nil
}
