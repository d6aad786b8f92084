package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	ma "github.com/multiformats/go-multiaddr"
)

// Validate checks bounds and cross-field rules. Each problem is reported with the key it concerns
// and what to do about it; all problems are returned together.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if len(c.Node.Roles) == 0 {
		bad("node.roles", "at least one role is needed (publisher, trainer, coordinator)")
	}
	seen := map[string]bool{}
	for i, r := range c.Node.Roles {
		if !isRole(r) {
			bad(fmt.Sprintf("node.roles[%d]", i), "unknown role %q: use publisher, trainer or coordinator", r)
		}
		if seen[r] {
			bad(fmt.Sprintf("node.roles[%d]", i), "role %q is listed twice", r)
		}
		seen[r] = true
	}
	if c.Node.ShutdownTimeout.Duration <= 0 {
		bad("node.shutdown_timeout", "must be positive, e.g. \"10s\"")
	}

	if len(c.P2P.Listen) == 0 {
		bad("p2p.listen", "at least one listen multiaddr is needed, e.g. \"/ip4/0.0.0.0/tcp/4001\"")
	}
	for i, s := range c.P2P.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			bad(fmt.Sprintf("p2p.listen[%d]", i), "invalid multiaddr %q: %v", s, err)
		}
	}
	for i, s := range c.P2P.Bootstrap {
		if err := checkPeerAddr(s); err != nil {
			bad(fmt.Sprintf("p2p.bootstrap[%d]", i), "%v", err)
		}
	}
	if len(c.P2P.Security) == 0 {
		bad("p2p.security", "at least one of tls, noise is needed")
	}
	for i, s := range c.P2P.Security {
		if s != "tls" && s != "noise" {
			bad(fmt.Sprintf("p2p.security[%d]", i), "unknown security protocol %q: use tls or noise", s)
		}
	}
	if c.P2P.ConnLow < 1 {
		bad("p2p.conn_low", "must be at least 1")
	}
	if c.P2P.ConnHigh <= c.P2P.ConnLow {
		bad("p2p.conn_high", "must be greater than p2p.conn_low (%d)", c.P2P.ConnLow)
	}
	if c.P2P.ConnGrace.Duration < 0 {
		bad("p2p.conn_grace", "must not be negative")
	}
	if c.P2P.MaxMemoryMiB < 16 {
		bad("p2p.max_memory_mib", "must be at least 16 (MiB)")
	}
	if c.P2P.MaxFDs < 16 {
		bad("p2p.max_fds", "must be at least 16")
	}
	if c.P2P.DiscoveryInterval.Duration < 100_000_000 {
		bad("p2p.discovery_interval", "must be at least 100ms")
	}
	if c.P2P.PresenceInterval.Duration < 100_000_000 {
		bad("p2p.presence_interval", "must be at least 100ms")
	}

	if err := checkHostPort(c.RPC.Addr); err != nil {
		bad("rpc.addr", "%v", err)
	}
	if c.RPC.ReadTimeout.Duration <= 0 {
		bad("rpc.read_timeout", "must be positive")
	}
	if c.RPC.WriteTimeout.Duration <= 0 {
		bad("rpc.write_timeout", "must be positive")
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "unknown level %q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "unknown format %q: use text or json", c.Log.Format)
	}

	if c.Store.GCInterval.Duration <= 0 {
		bad("store.gc_interval", "must be positive")
	}
	if c.Store.GCDiscardRatio <= 0 || c.Store.GCDiscardRatio >= 1 {
		bad("store.gc_discard_ratio", "must be between 0 and 1 (exclusive), e.g. 0.5")
	}
	return errors.Join(errs...)
}

func isRole(r string) bool {
	for _, have := range AllRoles {
		if r == have {
			return true
		}
	}
	return false
}

// checkPeerAddr accepts a multiaddr that names a peer: a transport address ending in /p2p/<ID>.
func checkPeerAddr(s string) error {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return fmt.Errorf("invalid multiaddr %q: %v", s, err)
	}
	if _, err := m.ValueForProtocol(ma.P_P2P); err != nil {
		return fmt.Errorf("multiaddr %q has no /p2p/<peer ID> part: append the peer's ID", s)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", s, err)
	}
	if net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("host %q must be an IP address or localhost", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q must be a number from 0 to 65535", port)
	}
	return nil
}
