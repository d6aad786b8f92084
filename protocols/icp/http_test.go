package icp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRepliesAreCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := MaxReply
		if r.URL.Path == "/big" {
			n = MaxReply + 1
		}
		if r.URL.Query().Has("chunked") {
			w.(http.Flusher).Flush() // no Content-Length: the body is streamed
		}
		io.Copy(w, io.LimitReader(zeros{}, int64(n)))
	}))
	defer srv.Close()
	c := httpClient()
	for _, path := range []string{"/ok", "/ok?chunked", "/big", "/big?chunked"} {
		resp, err := c.Get(srv.URL + path)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		big := strings.HasPrefix(path, "/big")
		if big && (err == nil || !strings.Contains(err.Error(), "exceeds")) {
			t.Errorf("%s: read %d bytes, err %v; want an error naming the cap", path, len(body), err)
		}
		if !big && (err != nil || len(body) != MaxReply) {
			t.Errorf("%s: read %d bytes, %v; want the whole reply", path, len(body), err)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
