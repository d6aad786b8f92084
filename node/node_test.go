package node

import (
	"testing"

	"github.com/califusion/califusion/config"
)

// startNode runs a node in-process on loopback.
func startNode(t *testing.T, roles ...string) *Node {
	t.Helper()
	return startNodeWith(t, func(cfg *config.Config) {
		if roles != nil {
			cfg.Node.Roles = roles
		}
	})
}
