package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aviate-labs/agent-go/principal"

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
	listened := map[string]bool{}
	for i, s := range c.P2P.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			bad(fmt.Sprintf("p2p.listen[%d]", i), "invalid multiaddr %q: %v", s, err)
		}
		if listened[s] {
			bad(fmt.Sprintf("p2p.listen[%d]", i), "%q is listed twice", s)
		}
		listened[s] = true
	}
	for i, s := range c.P2P.Bootstrap {
		if err := checkPeerAddr(s); err != nil {
			bad(fmt.Sprintf("p2p.bootstrap[%d]", i), "%v", err)
		}
	}
	if len(c.P2P.Security) == 0 {
		bad("p2p.security", "at least one of tls, noise is needed")
	}
	if c.P2P.PreferTransport != "tcp" && c.P2P.PreferTransport != "quic" {
		bad("p2p.prefer_transport", "unknown transport %q: use tcp or quic", c.P2P.PreferTransport)
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
	} else if !c.RPC.Loopback() && !c.RPC.AllowRemote {
		bad("rpc.addr", "%s is not a loopback address, so the admin API would be reachable from the network: use 127.0.0.1, or set rpc.allow_remote = true (flag --unsafe-rpc) if you mean it", c.RPC.Addr)
	}
	if c.RPC.MetricsAddr != "" {
		if err := checkHostPort(c.RPC.MetricsAddr); err != nil {
			bad("rpc.metrics_addr", "%v", err)
		} else if !c.RPC.MetricsLoopback() && !c.RPC.AllowRemote {
			bad("rpc.metrics_addr", "%s is not a loopback address, so the node's metrics would be readable from the network: use 127.0.0.1, or set rpc.allow_remote = true (flag --unsafe-rpc) if you mean it", c.RPC.MetricsAddr)
		}
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
	if c.Store.BlobCheckEvery.Duration < time.Second {
		bad("store.blob_check_interval", "must be at least 1s, e.g. \"1m\"")
	}
	if c.Store.GCDiscardRatio <= 0 || c.Store.GCDiscardRatio >= 1 {
		bad("store.gc_discard_ratio", "must be between 0 and 1 (exclusive), e.g. 0.5")
	}
	if c.Transfer.ChunkSize < 4<<10 || c.Transfer.ChunkSize > MaxChunkSize {
		bad("transfer.chunk_size", "must be between 4096 and %d bytes (4 MiB)", MaxChunkSize)
	}
	if c.Transfer.Window < 1 || c.Transfer.Window > 64 {
		bad("transfer.window", "must be between 1 and 64 chunks")
	}
	if c.Transfer.PerPeer < 1 || c.Transfer.PerPeer > 16 {
		bad("transfer.per_peer", "must be between 1 and 16")
	}
	if c.Transfer.MaxProviders < 1 {
		bad("transfer.max_providers", "must be at least 1")
	}
	if c.Transfer.StallTimeout.Duration < 100*time.Millisecond {
		bad("transfer.stall_timeout", "must be at least 100ms")
	}

	if u, err := url.Parse(c.ICP.ReplicaURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("icp.replica_url", "%q is not an http(s) URL", c.ICP.ReplicaURL)
	} else if c.ICP.FetchRootKey && isMainnetHost(u.Hostname()) {
		bad("icp.fetch_root_key", "must be false for the mainnet URL %s: trusting a fetched root key is only safe on a local replica", c.ICP.ReplicaURL)
	}
	if _, err := principal.Decode(c.ICP.LedgerCanisterID); err != nil {
		bad("icp.ledger_canister_id", "%q is not a principal: %v", c.ICP.LedgerCanisterID, err)
	}
	// Zero in any of these means its default (a config written from a partial ICP struct).
	if d := c.ICP.MaxPaymentAge.Duration; d < 0 || (d > 0 && d < time.Hour) {
		bad("icp.max_payment_age", "must be at least 1h (trainers pay, then unlock), e.g. \"720h\"")
	}
	if n := c.ICP.MaxVerifyBlocks; n != 0 && (n < 100 || n > 1_000_000) {
		bad("icp.max_verify_blocks", "must be between 100 and 1000000, e.g. 10000")
	}
	if n := c.ICP.VerificationsPerPeer; n < 0 || n > 10_000 {
		bad("icp.verifications_per_peer", "must be between 1 and 10000 per minute, e.g. 10")
	}
	switch c.ICP.LedgerKind {
	case "", "auto", "icrc3", "icp":
	default:
		bad("icp.ledger_kind", "unknown kind %q: use auto, icrc3 or icp", c.ICP.LedgerKind)
	}

	switch c.Calimero.Anchoring {
	case "require", "prefer", "off":
	default:
		bad("calimero.anchoring", "unknown policy %q: use require, prefer or off", c.Calimero.Anchoring)
	}
	if c.Calimero.URL != "" {
		if u, err := url.Parse(c.Calimero.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("calimero.url", "%q is not an http(s) URL", c.Calimero.URL)
		}
		if c.Calimero.ContextID == "" {
			bad("calimero.context_id", "is needed when calimero.url is set")
		}
	}
	if c.Calimero.InviteInterval.Duration < 0 || c.Calimero.InviteInterval.Duration > 24*time.Hour {
		bad("calimero.invite_interval", "%v is outside 0..24h", c.Calimero.InviteInterval.Duration)
	}
	if c.Calimero.TrainingContexts != nil && *c.Calimero.TrainingContexts && c.Calimero.URL == "" {
		bad("calimero.training_contexts", "needs calimero.url (training contexts live on a merod node)")
	}
	if c.Calimero.Anchoring == "require" && c.Calimero.URL == "" {
		bad("calimero.url", "is needed when calimero.anchoring is \"require\"")
	}

	switch c.Train.Hook {
	case HookBuiltin:
	case HookExec:
		if len(c.Train.Command) == 0 {
			bad("train.command", "is needed when train.hook is \"exec\", e.g. [\"python3\", \"Model.py\", \"--model\", \"{model}\", \"--data\", \"{data}\", \"--out\", \"{out}\"]")
		}
	default:
		bad("train.hook", "unknown hook %q: use builtin or exec", c.Train.Hook)
	}
	if c.Train.Timeout.Duration < time.Second {
		bad("train.timeout", "must be at least 1s")
	}
	if c.Train.Epochs < 1 || c.Train.Epochs > 10000 {
		bad("train.epochs", "must be between 1 and 10000")
	}
	if c.Train.BatchSize < 1 {
		bad("train.batch_size", "must be at least 1")
	}
	if !(c.Train.LearningRate > 0 && c.Train.LearningRate < 100) {
		bad("train.learning_rate", "must be a positive number below 100, e.g. 0.1")
	}
	if !(c.Train.FeatureScale > 0) {
		bad("train.feature_scale", "must be positive, e.g. 1 or 255")
	}
	if d := c.Train.FailoverAfter.Duration; d != 0 && (d < time.Second || d > 24*time.Hour) {
		bad("train.failover_after", "must be 0s (never) or from 1s to 24h (default 1m), not %v", d)
	}
	if !(c.Train.EvalTolerance >= 0 && c.Train.EvalTolerance <= 1) {
		bad("train.eval_tolerance", "must be a fraction of accuracy from 0 to 1 (default 0.02), not %v", c.Train.EvalTolerance)
	}
	if c.Train.MaxUpdateMiB < 1 || c.Train.MaxUpdateMiB > 1<<20 {
		bad("train.max_update_mib", "must be between 1 and 1048576")
	}
	errs = append(errs, c.Train.validateHookConfig()...)
	if c.Train.AutoPerHour < 0 {
		bad("train.auto_max_per_hour", "must be ≥ 0 (0: no cap; default 60), not %d", c.Train.AutoPerHour)
	}
	if c.Train.MaxRoundEpochs < 0 {
		bad("train.max_round_epochs", "must be ≥ 0 (0: no cap; default 50), not %d", c.Train.MaxRoundEpochs)
	}
	if _, _, err := ParseQuietHours(c.Train.QuietHours); err != nil {
		bad("train.quiet_hours", "%v", err)
	}
	if c.Train.AdoptMaxReward != "" && !tokenAmount.MatchString(c.Train.AdoptMaxReward) {
		bad("train.adopt_max_reward", "must be an amount of tokens such as \"0.001\", not %q", c.Train.AdoptMaxReward)
	}
	return errors.Join(errs...)
}

// MaxChunkSize is the largest chunk a model may use.
const MaxChunkSize = 4 << 20

// isMainnetHost reports whether host is one of the Internet Computer's public boundary domains.
func isMainnetHost(host string) bool {
	host = strings.ToLower(host)
	for _, d := range []string{"icp-api.io", "icp0.io", "ic0.app"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
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

// quietHours is train.quiet_hours' form: two times of day.
var quietHours = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$`)

// tokenAmount is an amount of tokens as a person writes it.
var tokenAmount = regexp.MustCompile(`^[0-9]{1,20}(\.[0-9]{1,18})?$`)

// ParseQuietHours parses train.quiet_hours, "HH:MM-HH:MM" in UTC, into minutes after midnight
// ("" is no window: 0, 0). From > To spans midnight.
func ParseQuietHours(s string) (from, to int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	m := quietHours.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("must be HH:MM-HH:MM in UTC (e.g. \"22:00-06:00\"), or empty, not %q", s)
	}
	num := func(x string) int { n, _ := strconv.Atoi(x); return n }
	from, to = num(m[1])*60+num(m[2]), num(m[3])*60+num(m[4])
	if from == to {
		return 0, 0, fmt.Errorf("%q is an empty window", s)
	}
	return from, to, nil
}
