// Package node assembles a califusiond daemon from its services and runs its lifecycle.
//
// A Node is built in three steps, as in geth's node package:
//
//	n, err := node.New(cfg, datadir, logger)   // checks and loads; starts nothing
//	err = n.Start(ctx)                          // the start table, in order
//	err = n.Close()                             // stops everything in reverse, idempotent
//
// The start table (node.go) brings up the store, the libp2p host, the DHT and gossipsub, then the
// services, each a package of its own that takes what it uses in its constructor and owns its
// goroutines (New/Start/Close): presence, the chunk store and keyring, catalog, jobs, keys,
// fetch, rounds, storage, discovery, then the admin RPC and the optional metrics listener. No
// service holds a reference to the Node; where one service needs another, it declares the few
// methods it uses as an interface and the Node passes the other service in (node/publish, for one, is handed the catalog, the chunk
// store, the keyring, anchoring and the key client).
//
// If a service fails to start, the ones already started are stopped in reverse order. The admin
// RPC starts last; once it serves, the bound address is written to <datadir>/rpc.addr and one
// "ready" line is logged, so scripts can wait for either. The rpc*.go files are the admin API's
// thin adapters: parse params, call one service method, map the service's errors to API codes.
package node
