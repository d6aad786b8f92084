package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/califusion/califusion/e2e/harness"
)

// p2pInbound counts the libp2p bytes a daemon has received over its TCP connections to the
// given peers: the sum of tcpi_bytes_received (the kernel's count of TCP payload bytes, so
// libp2p's security and muxer framing included, IP and TCP headers not) over the daemon's
// sockets whose local port is its libp2p listen port (TCP reuseport: its inbound and outbound
// connections both use it) or whose remote port is a peer's libp2p listen port. The admin API
// and the ledger emulator's sockets are not counted. Read with `ss -tinp`.
type p2pInbound struct {
	pid   int
	local string          // the daemon's libp2p TCP port
	peers map[string]bool // the peers' libp2p TCP ports
}

// newP2PInbound counts n's inbound libp2p bytes from peers.
func newP2PInbound(n *harness.Node, peers []*harness.Node) (*p2pInbound, error) {
	c := &p2pInbound{pid: n.PID(), peers: map[string]bool{}}
	var err error
	if c.local, err = tcpPort(n); err != nil {
		return nil, err
	}
	for _, p := range peers {
		port, err := tcpPort(p)
		if err != nil {
			return nil, err
		}
		c.peers[port] = true
	}
	return c, nil
}

// tcpPort is the port of n's loopback libp2p TCP address.
func tcpPort(n *harness.Node) (string, error) {
	a := n.P2PAddr()
	_, rest, ok := strings.Cut(a, "/tcp/")
	if !ok {
		return "", fmt.Errorf("%s has no TCP address (%q)", n.Name, a)
	}
	port, _, _ := strings.Cut(rest, "/")
	return port, nil
}

// sockets maps each counted socket (local and remote address) to its bytes received.
func (c *p2pInbound) sockets(ctx context.Context) (map[string]int64, error) {
	out, err := exec.CommandContext(ctx, "ss", "-tinpH", "state", "established").Output()
	if err != nil {
		return nil, fmt.Errorf("ss: %w", err)
	}
	return c.parse(string(out)), nil
}

// parse reads `ss -tinpH state established` output: per socket a line "Recv-Q Send-Q local
// remote users:((...pid=N,...))" and an indented line of TCP info with bytes_received:N.
func (c *p2pInbound) parse(out string) map[string]int64 {
	socks := map[string]int64{}
	owner := fmt.Sprintf("pid=%d,", c.pid)
	var key string // the socket the info lines belong to, "" when not counted
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			key = ""
			f := strings.Fields(line)
			if len(f) < 4 || !strings.Contains(line, owner) {
				continue
			}
			local, remote := f[2], f[3]
			if port(local) == c.local || c.peers[port(remote)] {
				key = local + " " + remote
				socks[key] = 0
			}
			// ss puts the info on the same line when it is not a terminal and wide enough.
			line = strings.Join(f[4:], " ")
		}
		if key == "" {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "bytes_received:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				socks[key] = n
			}
		}
	}
	return socks
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// inboundSnapshot is one reading of the counter.
type inboundSnapshot map[string]int64

// snapshot reads the counter.
func (c *p2pInbound) snapshot(ctx context.Context) (inboundSnapshot, error) {
	return c.sockets(ctx)
}

// since returns the bytes received between before and now, and how many of before's sockets
// closed in between (their bytes after before are lost: the figure is then a lower bound).
func (c *p2pInbound) since(ctx context.Context, before inboundSnapshot) (int64, int, error) {
	now, err := c.sockets(ctx)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for k, v := range now {
		total += v - before[k]
	}
	closed := 0
	for k := range before {
		if _, ok := now[k]; !ok {
			closed++
		}
	}
	return total, closed, nil
}

// procCPU reads a process's user plus system CPU time from /proc/<pid>/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) in parentheses; utime and stime are
	// fields 14 and 15 of the whole line, 12 and 13 after ") ".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// resetPeakRSS resets the process's VmHWM (writing 5 to /proc/<pid>/clear_refs), so that a
// later peakRSS reads the peak of what came after. It needs to own the process or be root.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
