package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node"
	"github.com/spf13/cobra"
)

func runCmd(g *globals) *cobra.Command {
	var (
		cfgPath string
		o       config.Overrides
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g.datadir, cfgPath)
			if err != nil {
				return err
			}
			if err := cfg.Apply(o); err != nil {
				return err
			}
			return runDaemon(g.datadir, cfg)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "config file (default <datadir>/config.toml)")
	cmd.Flags().StringArrayVar(&o.Listen, "listen", nil, "libp2p listen multiaddr for this run (repeatable)")
	cmd.Flags().StringVar(&o.RPCAddr, "rpc-addr", "", "admin RPC host:port for this run")
	cmd.Flags().StringArrayVar(&o.Bootstrap, "bootstrap", nil, "bootstrap peer multiaddr with /p2p/ID for this run (repeatable)")
	cmd.Flags().StringVar(&o.LogLevel, "log-level", "", "log level for this run: debug, info, warn or error (default log.level, info)")
	cmd.Flags().BoolVar(&o.UnsafeRPC, "unsafe-rpc", false, "allow a non-loopback --rpc-addr / rpc.addr (the admin API is then reachable from the network)")
	return cmd
}

// loadConfig reads path, or <datadir>/config.toml when path is empty; a datadir without a
// config file runs on the defaults.
func loadConfig(datadir, path string) (*config.Config, error) {
	if path == "" {
		path = filepath.Join(datadir, node.ConfigFile)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return config.Default(), nil
		}
	}
	return config.Load(path)
}

// newLogger returns the daemon's logger and the level it logs at, which node_log_level changes.
func newLogger(cfg config.Log) (*slog.Logger, *slog.LevelVar) {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Level)) // validated by config
	lv := new(slog.LevelVar)
	lv.Set(level)
	opts := &slog.HandlerOptions{Level: lv}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), lv
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), lv
}

// runDaemon runs a node until the first SIGINT/SIGTERM, then shuts it down within the configured
// timeout; a second signal exits at once.
func runDaemon(datadir string, cfg *config.Config) error {
	// Everything the daemon creates in its datadir (badger's tables and logs, blobs, updates) is
	// for its owner only: files 0600, folders 0700.
	syscall.Umask(0o077)
	log, level := newLogger(cfg.Log)
	if !cfg.RPC.Loopback() {
		log.Warn("UNSAFE: the admin RPC listens on a non-loopback address; anyone who can reach it and steals the token controls this node and spends its funds", "addr", cfg.RPC.Addr)
	}
	dir, err := node.OpenDatadir(datadir)
	if err != nil {
		return err
	}
	defer dir.Close()
	n, err := node.New(cfg, dir, log)
	if err != nil {
		return err
	}
	n.SetLogLevelVar(level)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	startCtx, cancelStart := context.WithCancel(context.Background())
	go func() {
		select {
		case <-sigs:
			cancelStart()
		case <-startCtx.Done():
		}
	}()
	err = n.Start(startCtx)
	cancelStart()
	if err != nil {
		return err
	}

	sig := <-sigs
	log.Info("shutting down", "signal", sig.String(), "timeout", cfg.Node.ShutdownTimeout.Duration)
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		log.Info("stopped")
		return nil
	case sig := <-sigs:
		log.Warn("second signal: exiting now", "signal", sig.String())
		os.Exit(1)
	case <-time.After(cfg.Node.ShutdownTimeout.Duration):
		return fmt.Errorf("shutdown did not finish within %v (node.shutdown_timeout)", cfg.Node.ShutdownTimeout.Duration)
	}
	return nil
}
