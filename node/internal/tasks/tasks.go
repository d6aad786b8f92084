// Package tasks runs a service's background goroutines so that its Close can stop them: Stop
// cancels their context and waits for every one, and once stopped no new task starts.
package tasks

import (
	"context"
	"sync"
)

// Group is a set of goroutines sharing one context.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// New returns a group whose context is a child of parent.
func New(parent context.Context) *Group {
	ctx, cancel := context.WithCancel(parent)
	return &Group{ctx: ctx, cancel: cancel}
}

// Context is the group's context: cancelled by Stop.
func (g *Group) Context() context.Context { return g.ctx }

// Go starts fn in a goroutine with the group's context, unless Stop has begun.
func (g *Group) Go(fn func(ctx context.Context)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn(g.ctx)
	}()
}

// Stop cancels every task and waits for them to return. It is safe to call more than once.
func (g *Group) Stop() error {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
	return nil
}
