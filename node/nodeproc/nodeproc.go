// Package nodeproc runs real califusiond processes on one machine, in the style of kubo's
// test/cli/harness and tailscale's tstest/integration: a Cluster owns one directory with one
// datadir per node; a Node is started with loopback listeners on port 0, is ready once it has
// written <datadir>/rpc.addr and answers node_info, and is stopped by SIGTERM then, after
// StopTimeout, SIGKILL of its process group. `califusiond devnet` (node/devnet) runs its network
// with it, and the end-to-end test harness e2e/harness is built on it.
package nodeproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/protocols/adminrpc"
)

// LoopbackArgs make a daemon listen on free loopback ports only.
var LoopbackArgs = []string{
	"--listen", "/ip4/127.0.0.1/tcp/0",
	"--listen", "/ip4/127.0.0.1/udp/0/quic-v1",
	"--rpc-addr", "127.0.0.1:0",
}

// StopTimeout is how long Stop waits after SIGTERM before it sends SIGKILL.
var StopTimeout = 15 * time.Second

// Cluster owns a set of nodes under one directory.
type Cluster struct {
	// Bin is the califusiond binary every node runs.
	Bin string
	// Dir holds one datadir per node, named after the node, and its log beside it.
	Dir string
	// RunArgs are given to every `run` before a node's own extra args (default LoopbackArgs).
	RunArgs []string

	mu    sync.Mutex
	nodes []*Node
}

// New returns a cluster that runs the califusiond binary bin with datadirs under dir.
func New(bin, dir string) *Cluster { return &Cluster{Bin: bin, Dir: dir, RunArgs: LoopbackArgs} }

// Nodes returns the nodes created so far, in creation order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// Init creates a node's datadir with `califusiond init`.
func (c *Cluster) Init(ctx context.Context, name string, roles []string, extraArgs ...string) (*Node, error) {
	n := &Node{Name: name, Roles: roles, Datadir: filepath.Join(c.Dir, name), bin: c.Bin, runArgs: c.RunArgs}
	args := []string{"init", "--datadir", n.Datadir}
	if len(roles) > 0 {
		args = append(args, "--roles", strings.Join(roles, ","))
	}
	args = append(args, extraArgs...)
	if out, err := exec.CommandContext(ctx, c.Bin, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("init %s: %w\n%s", name, err, out)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n, nil
}

// Reuse adds a node whose datadir under the cluster directory was initialised earlier.
func (c *Cluster) Reuse(name string, roles []string) (*Node, error) {
	n := &Node{Name: name, Roles: roles, Datadir: filepath.Join(c.Dir, name), bin: c.Bin, runArgs: c.RunArgs}
	if _, err := os.Stat(filepath.Join(n.Datadir, "identity.key")); err != nil {
		return nil, fmt.Errorf("reuse %s: %w", name, err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n, nil
}

// StopAll stops every running node, concurrently.
func (c *Cluster) StopAll() error {
	var wg sync.WaitGroup
	errs := make([]error, 0)
	var mu sync.Mutex
	for _, n := range c.Nodes() {
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			if err := n.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
				mu.Unlock()
			}
		}(n)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ConnectAll connects every node to every other node through node_connect.
func (c *Cluster) ConnectAll(ctx context.Context) error {
	nodes := c.Nodes()
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if _, err := a.Client().NodeConnect(ctx, b.P2PAddr()); err != nil {
				return fmt.Errorf("connect %s to %s: %w", a.Name, b.Name, err)
			}
		}
	}
	return nil
}

// Node is one califusiond process and its datadir.
type Node struct {
	Name    string
	Roles   []string
	Datadir string
	bin     string
	runArgs []string
	// Env is added to the environment of the next Start (e.g. failpoints).
	Env []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	exit   error
	logf   *os.File
	client *adminrpc.Client
	info   adminrpc.NodeInfo
}

// LogPath is the file the node's stdout and stderr go to (appended across restarts).
func (n *Node) LogPath() string { return n.Datadir + ".log" }

// Logs returns everything the node has logged.
func (n *Node) Logs() string {
	b, err := os.ReadFile(n.LogPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// Start runs `califusiond run` on the node's datadir with the cluster's RunArgs and extraArgs,
// and waits until it writes rpc.addr and answers node_info.
func (n *Node) Start(ctx context.Context, extraArgs ...string) error {
	n.mu.Lock()
	if n.cmd != nil {
		select {
		case <-n.exited: // it ended by itself (a crash): start it again
			if n.logf != nil {
				n.logf.Close()
			}
			n.cmd, n.logf, n.client = nil, nil, nil
		default:
			n.mu.Unlock()
			return fmt.Errorf("%s is already running", n.Name)
		}
	}
	os.Remove(filepath.Join(n.Datadir, adminrpc.AddrFile))
	logf, err := os.OpenFile(n.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	args := append([]string{"run", "--datadir", n.Datadir}, n.runArgs...)
	args = append(args, extraArgs...)
	cmd := exec.Command(n.bin, args...)
	cmd.Env = append(os.Environ(), n.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.logf, n.exited, n.client = cmd, logf, exited, nil
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.exit = err
		n.mu.Unlock()
		close(exited)
	}()
	n.mu.Unlock()
	return n.waitReady(ctx, exited)
}

// waitReady polls for rpc.addr and a successful node_info, failing early if the process exits.
func (n *Node) waitReady(ctx context.Context, exited chan struct{}) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready: %w", n.Name, ctx.Err())
		case <-exited:
			n.reap()
			return fmt.Errorf("%s exited before it was ready (%v); its log:\n%s", n.Name, n.exit, n.Logs())
		case <-tick.C:
		}
		c, err := adminrpc.Dial(n.Datadir)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := c.NodeInfo(cctx)
		cancel()
		if err != nil {
			continue
		}
		n.mu.Lock()
		n.client, n.info = c, info
		n.mu.Unlock()
		return nil
	}
}

// PID returns the node's process ID, or 0 when it is not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// RSS returns the resident memory of the node's process in bytes (Linux /proc).
func (n *Node) RSS() (int64, error) {
	pid := n.PID()
	if pid == 0 {
		return 0, fmt.Errorf("%s is not running", n.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// Running reports whether the node's process is alive: started, and neither stopped nor exited
// by itself (a crash, a failpoint).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Client returns an RPC client of the running node.
func (n *Node) Client() *adminrpc.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.client
}

// Info returns node_info as read when the node became ready.
func (n *Node) Info() adminrpc.NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.info
}

// RPCAddr returns the node's admin listener address.
func (n *Node) RPCAddr() string {
	if c := n.Client(); c != nil {
		return c.Addr()
	}
	return ""
}

// P2PAddr returns the node's loopback TCP multiaddr with its /p2p/ part.
func (n *Node) P2PAddr() string {
	for _, a := range n.Info().Addrs {
		if strings.Contains(a, "/ip4/127.0.0.1/tcp/") {
			return a
		}
	}
	if addrs := n.Info().Addrs; len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// Stop sends SIGTERM and waits StopTimeout for a clean exit, then SIGKILLs the process group.
func (n *Node) Stop() error {
	return n.signal(syscall.SIGTERM, StopTimeout)
}

// Kill ends the process with SIGKILL at once, as a crash would.
func (n *Node) Kill() error {
	return n.signal(syscall.SIGKILL, StopTimeout)
}

func (n *Node) signal(sig syscall.Signal, timeout time.Duration) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(sig)
	var err error
	select {
	case <-exited:
	case <-time.After(timeout):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		err = fmt.Errorf("%s did not exit within %v of %v; killed", n.Name, timeout, sig)
	}
	n.reap()
	if err == nil && sig == syscall.SIGTERM {
		n.mu.Lock()
		if n.exit != nil {
			err = fmt.Errorf("%s exited uncleanly after SIGTERM: %v", n.Name, n.exit)
		}
		n.mu.Unlock()
	}
	return err
}

func (n *Node) reap() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logf != nil {
		n.logf.Close()
	}
	n.cmd, n.logf, n.client = nil, nil, nil
}

// WaitFor polls cond every 50ms until it returns nil or ctx ends; the last error is returned.
func WaitFor(ctx context.Context, cond func() error) error {
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// EditConfig loads the node's config.toml, lets fn change it, and writes it back; it takes
// effect at the next Start.
func (n *Node) EditConfig(fn func(*config.Config)) error {
	path := filepath.Join(n.Datadir, "config.toml")
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	fn(cfg)
	if err := cfg.Validate(); err != nil {
		return err
	}
	b, err := cfg.Encode()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
