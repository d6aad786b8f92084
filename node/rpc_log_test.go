package node

import (
	"log/slog"
	"testing"

	"github.com/califusion/califusion/protocols/adminrpc"
)

func TestRPCNodeLogLevel(t *testing.T) {
	lv := new(slog.LevelVar)
	n := &Node{log: slog.New(slog.DiscardHandler), level: lv}
	r, err := n.rpcNodeLogLevel(t.Context(), adminrpc.LogLevelParams{Level: "debug"})
	if err != nil || r.Old != "info" || r.New != "debug" || lv.Level() != slog.LevelDebug {
		t.Errorf("node_log_level(debug) = %+v, %v (level %v), want info → debug", r, err, lv.Level())
	}
	if r, err = n.rpcNodeLogLevel(t.Context(), adminrpc.LogLevelParams{Level: "warn"}); err != nil || r.Old != "debug" || r.New != "warn" {
		t.Errorf("node_log_level(warn) = %+v, %v, want debug → warn", r, err)
	}
	if _, err := n.rpcNodeLogLevel(t.Context(), adminrpc.LogLevelParams{Level: "loud"}); adminrpc.CodeOf(err) != adminrpc.CodeInvalidParams {
		t.Errorf("node_log_level(loud) = %v, want invalid params", err)
	}
	if _, err := (&Node{log: n.log}).rpcNodeLogLevel(t.Context(), adminrpc.LogLevelParams{Level: "info"}); adminrpc.CodeOf(err) != adminrpc.CodeUnavailable {
		t.Errorf("node_log_level on a fixed logger = %v, want unavailable", err)
	}
}
