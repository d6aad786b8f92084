package config

import (
	"os"
	"path/filepath"
)

// EnvHome names the environment variable that overrides the default datadir.
const EnvHome = "CALIFUSION_HOME"

// DefaultDatadir returns $CALIFUSION_HOME, or ~/.califusion when it is unset.
func DefaultDatadir() string {
	if d := os.Getenv(EnvHome); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".califusion"
	}
	return filepath.Join(home, ".califusion")
}

// Overrides are per-run settings from command-line flags; empty fields leave the config alone.
type Overrides struct {
	Listen    []string
	RPCAddr   string
	Bootstrap []string
	Roles     []string
	UnsafeRPC bool   // --unsafe-rpc: sets rpc.allow_remote for this run
	LogLevel  string // --log-level: sets log.level for this run
}

// Apply writes the overrides into c and re-validates it.
func (c *Config) Apply(o Overrides) error {
	if len(o.Listen) > 0 {
		c.P2P.Listen = append([]string(nil), o.Listen...)
	}
	if o.RPCAddr != "" {
		c.RPC.Addr = o.RPCAddr
	}
	if len(o.Bootstrap) > 0 {
		c.P2P.Bootstrap = append([]string(nil), o.Bootstrap...)
	}
	if len(o.Roles) > 0 {
		c.Node.Roles = append([]string(nil), o.Roles...)
	}
	if o.UnsafeRPC {
		c.RPC.AllowRemote = true
	}
	if o.LogLevel != "" {
		c.Log.Level = o.LogLevel
	}
	return c.Validate()
}
