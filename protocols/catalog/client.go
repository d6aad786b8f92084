package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Fetch asks p for its catalog and passes each manifest to accept, which verifies it; a
// manifest accept refuses is skipped (and counted), never stored by this package. A non-zero since
// asks only for what the peer added since then, by the peer's clock. It returns how many
// manifests were accepted and refused, and the peer's clock to ask since next time (zero if the
// peer did not say).
func Fetch(ctx context.Context, h host.Host, p peer.ID, since time.Time, accept func(signedManifest []byte) error) (accepted, refused int, next time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	st, err := h.NewStream(ctx, p, ID)
	if err != nil {
		return 0, 0, next, fmt.Errorf("open catalog stream to %s: %w", p, err)
	}
	defer st.Close()
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	req := Request{}
	if !since.IsZero() {
		req.Since = since.UnixMilli()
	}
	if err := wire.WriteFrame(st, &req); err != nil {
		st.Reset()
		return 0, 0, next, fmt.Errorf("send catalog request: %w", err)
	}
	st.CloseWrite()
	for n := 0; ; n++ {
		if n > MaxEntries {
			st.Reset()
			return accepted, refused, next, ErrTooMany
		}
		var e Entry
		if err := wire.ReadFrame(st, MaxManifestSize+64, &e); err != nil {
			st.Reset()
			return accepted, refused, next, fmt.Errorf("read catalog from %s: %w", p, err)
		}
		if e.Done {
			if e.Now > 0 {
				next = time.UnixMilli(e.Now)
			}
			return accepted, refused, next, nil
		}
		if accept(e.Manifest) == nil {
			accepted++
		} else {
			refused++
		}
	}
}
