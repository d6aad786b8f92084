package node

import (
	"context"
	"log/slog"
	"strings"

	"github.com/califusion/califusion/protocols/adminrpc"
)

// SetLogLevelVar makes the level of the node's logger adjustable at run time (node_log_level):
// v must be the level its handler was built with. Call it before Start.
func (n *Node) SetLogLevelVar(v *slog.LevelVar) { n.level = v }

// registerLogRPC registers node_log_level.
func (n *Node) registerLogRPC(s *adminrpc.Server) {
	adminrpc.Handle(s, "node_log_level", n.rpcNodeLogLevel)
}

func (n *Node) rpcNodeLogLevel(ctx context.Context, p adminrpc.LogLevelParams) (adminrpc.LogLevelResult, error) {
	var level slog.Level
	switch p.Level {
	case "debug", "info", "warn", "error":
		level.UnmarshalText([]byte(p.Level))
	default:
		return adminrpc.LogLevelResult{}, adminrpc.Errorf(adminrpc.CodeInvalidParams, "unknown log level %q: use debug, info, warn or error", p.Level)
	}
	if n.level == nil {
		return adminrpc.LogLevelResult{}, adminrpc.Errorf(adminrpc.CodeUnavailable, "this node's log level is fixed (the process that embeds it did not make it adjustable)")
	}
	old := n.level.Level()
	n.level.Set(level)
	res := adminrpc.LogLevelResult{Old: levelName(old), New: levelName(level)}
	n.log.Info("log level changed", "old", res.Old, "new", res.New)
	return res, nil
}

// levelName is a level as config's log.level spells it.
func levelName(l slog.Level) string { return strings.ToLower(l.String()) }
