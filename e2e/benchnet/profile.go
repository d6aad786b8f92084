package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/califusion/califusion/e2e/harness"
)

// profileDir, when set (-cpuprofile), receives CPU profiles of the daemons during the measured
// phase: <dir>/<label>-<node>.pprof, for `go tool pprof`.
var profileDir string

// profileCPU starts a CPU profile of each named daemon for d through its admin API's
// /debug/pprof/profile and returns a function that waits for the profiles to be written.
// It does nothing when profileDir is empty.
func profileCPU(ctx context.Context, label string, d time.Duration, nodes map[string]*harness.Node) (wait func() error) {
	if profileDir == "" {
		return func() error { return nil }
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for name, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fetchProfile(ctx, n, d, filepath.Join(profileDir, fmt.Sprintf("%s-%s.pprof", label, name))); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("profile %s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	return func() error {
		wg.Wait()
		if len(errs) > 0 {
			return errs[0]
		}
		return nil
	}
}

func fetchProfile(ctx context.Context, n *harness.Node, d time.Duration, path string) error {
	token, err := os.ReadFile(filepath.Join(n.Datadir, "rpc.token"))
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", n.RPCAddr(), max(1, int(d.Seconds())))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
