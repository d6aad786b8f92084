package catalog

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/califusion/califusion/protocols/wire"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Sync reads p's catalog: it lists the IDs p added since since (by p's clock; zero: all), asks
// for the manifests of those known reports false for, and passes each to accept, which verifies
// and stores it; a manifest accept refuses is counted and skipped, never stored by this package.
// It returns how many manifests were accepted and refused, and p's clock to ask since next time
// (zero if p did not say). Manifests reach accept in the order p added them, so a parent comes
// before its children. When accept returns ErrEnough the sync stops there and returns an error
// wrapping it; the caller should then ask since the same time again later.
func Sync(ctx context.Context, h host.Host, p peer.ID, since time.Time, known func(id [32]byte) bool, accept func(signedManifest []byte) error) (accepted, refused int, next time.Time, err error) {
	for {
		ids, now, more, err := listIDs(ctx, h, p, since)
		if err != nil {
			return accepted, refused, next, err
		}
		var want [][]byte
		listed := make(map[[32]byte]bool, len(ids))
		for _, id := range ids {
			if !listed[id] && !known(id) { // pages may overlap by a millisecond
				want = append(want, id[:])
			}
			listed[id] = true
		}
		for len(want) > 0 {
			batch := want[:min(len(want), MaxWant)]
			want = want[len(batch):]
			a, r, err := fetchManifests(ctx, h, p, batch, accept)
			accepted, refused = accepted+a, refused+r
			if err != nil {
				return accepted, refused, next, err
			}
		}
		next = now
		// A page that does not move forward would repeat itself: stop and resume next time.
		if !more || now.IsZero() || !now.After(since) {
			return accepted, refused, next, nil
		}
		since = now
	}
}

// exchange opens a catalog stream to p, sends req and calls read for each answer entry until
// the final one, which it returns.
func exchange(ctx context.Context, h host.Host, p peer.ID, req *Request, maxEntries int, read func(*Entry) error) (Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	st, err := h.NewStream(ctx, p, ID)
	if err != nil {
		return Entry{}, fmt.Errorf("open catalog stream to %s: %w", p, err)
	}
	defer st.Close()
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	if err := wire.WriteFrame(st, req); err != nil {
		st.Reset()
		return Entry{}, fmt.Errorf("send catalog request: %w", err)
	}
	st.CloseWrite()
	for n := 0; ; n++ {
		var e Entry
		if err := wire.ReadFrame(st, MaxManifestSize+64, &e); err != nil {
			st.Reset()
			return Entry{}, fmt.Errorf("read catalog from %s: %w", p, err)
		}
		if e.Done {
			return e, nil
		}
		if n == maxEntries {
			st.Reset()
			return Entry{}, fmt.Errorf("%s: %w", p, ErrTooMany)
		}
		if err := read(&e); err != nil {
			st.Reset()
			return Entry{}, fmt.Errorf("catalog from %s: %w", p, err)
		}
	}
}

// listLimit is the IDs asked for in one listing page (0: MaxIDs); tests lower it.
var listLimit uint32

// listIDs asks p for the IDs it added since since.
func listIDs(ctx context.Context, h host.Host, p peer.ID, since time.Time) (ids [][32]byte, now time.Time, more bool, err error) {
	req := Request{Limit: listLimit}
	if !since.IsZero() {
		req.Since = since.UnixMilli()
	}
	end, err := exchange(ctx, h, p, &req, MaxIDs, func(e *Entry) error {
		if len(e.ID) != 32 || len(e.Manifest) > 0 {
			return fmt.Errorf("%w: a listing entry must be one 32-byte ModelID", ErrBadAnswer)
		}
		ids = append(ids, [32]byte(e.ID))
		return nil
	})
	if err != nil {
		return nil, now, false, err
	}
	if end.Now > 0 {
		now = time.UnixMilli(end.Now)
	}
	return ids, now, end.More, nil
}

// fetchManifests asks p for the manifests of want and passes each to accept; a manifest that
// was not asked for is refused.
func fetchManifests(ctx context.Context, h host.Host, p peer.ID, want [][]byte, accept func([]byte) error) (accepted, refused int, err error) {
	asked := make(map[[32]byte]bool, len(want))
	for _, id := range want {
		asked[[32]byte(id)] = true
	}
	_, err = exchange(ctx, h, p, &Request{Want: want}, len(want), func(e *Entry) error {
		if len(e.Manifest) == 0 {
			return fmt.Errorf("%w: a manifest answer without a manifest", ErrBadAnswer)
		}
		id := sha256.Sum256(e.Manifest)
		if !asked[id] {
			refused++
			return nil
		}
		delete(asked, id) // a second copy is not accepted again
		switch err := accept(e.Manifest); {
		case errors.Is(err, ErrEnough):
			return err
		case err == nil:
			accepted++
		default:
			refused++
		}
		return nil
	})
	return accepted, refused, err
}

// Manifests asks p for the signed manifests of ids (at most MaxWant) and passes each answer whose
// SHA-256 is one of ids to accept, at most once per ID; p need not be trusted, so accept still
// verifies what it gets. A manifest p sends that was not asked for is not passed on but counted in
// refused, as is one accept refuses (a caller whose accept refuses nothing learns from refused
// that p lied, and should not ask it again). A model p does not know is absent from the answer.
// It is the by-ID request Sync makes after a listing; the wire format is the same.
func Manifests(ctx context.Context, h host.Host, p peer.ID, ids [][32]byte, accept func(signedManifest []byte) error) (accepted, refused int, err error) {
	if len(ids) == 0 {
		return 0, 0, nil
	}
	if len(ids) > MaxWant {
		return 0, 0, fmt.Errorf("%w: %d manifests wanted, at most %d", ErrBadRequest, len(ids), MaxWant)
	}
	want := make([][]byte, len(ids))
	for i := range ids {
		want[i] = ids[i][:]
	}
	return fetchManifests(ctx, h, p, want, accept)
}
