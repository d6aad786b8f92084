package node

import (
	"context"
	"sync"
)

// tasks runs a service's background goroutines: stop cancels their context and waits for them,
// and once stopped no new task starts.
type tasks struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func newTasks(parent context.Context) *tasks {
	ctx, cancel := context.WithCancel(parent)
	return &tasks{ctx: ctx, cancel: cancel}
}

// run starts fn in a goroutine with the tasks' context, unless stop has begun.
func (t *tasks) run(fn func(ctx context.Context)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		fn(t.ctx)
	}()
}

// stop cancels every task and waits for them to return.
func (t *tasks) stop() error {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	return nil
}
