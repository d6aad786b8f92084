package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// serve runs srv on ln until the node stops: Close shuts it down gracefully (2 s, then at once),
// after calling before (which removes the address file that says the listener serves).
func (n *Node) serve(name string, srv *http.Server, ln net.Listener, before func()) {
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error(name+" stopped", "err", err)
		}
	}()
	n.onStop(func() error {
		before()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if err != nil {
			err = srv.Close()
		}
		<-served
		return err
	})
}
