package icp

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// MaxReply caps one HTTP reply from a replica. agent-go reads replies whole; without a cap a
// hostile or broken replica could make a node buffer without bound. A reply carries at most one
// Candid value (MaxCandidReply, checked again before it is decoded) and a certificate or
// signatures of a few KiB.
const MaxReply = MaxCandidReply + 1<<20

// httpClient is the client agent-go uses: a deadline on every request and capped replies.
func httpClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Minute, Transport: cappedTransport{http.DefaultTransport}}
}

type cappedTransport struct{ next http.RoundTripper }

func (t cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > MaxReply {
		resp.Body.Close()
		return nil, fmt.Errorf("icp: reply of %d bytes from %s exceeds %d", resp.ContentLength, r.URL.Host, MaxReply)
	}
	resp.Body = &cappedBody{rc: resp.Body, left: MaxReply}
	return resp, nil
}

// cappedBody fails a read that goes beyond the cap instead of truncating silently.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("icp: reply exceeds %d bytes", MaxReply)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }
