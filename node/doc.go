// Package node assembles a califusiond daemon from its parts and runs its lifecycle.
//
// A Node is built in three steps, as in geth's node package:
//
//	n, err := node.New(cfg, datadir, logger)   // checks and loads; starts nothing
//	err = n.Start(ctx)                          // store → host → DHT → pubsub → services → RPC
//	err = n.Close()                             // stops everything in reverse, idempotent
//
// If a service fails to start, the ones already started are stopped in reverse order. The admin
// RPC starts last; once it serves, the bound address is written to <datadir>/rpc.addr and one
// "ready" line is logged, so scripts can wait for either.
package node
