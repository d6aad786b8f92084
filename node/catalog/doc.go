// Package catalog is the node's model catalog: verified signed manifests with their derived
// lineages, announced over gossipsub, read from peers' catalogs and from Calimero anchors, and
// provided in the DHT. A model ID the catalog lacks is resolved from the network on demand
// (Resolve: connected peers and DHT providers asked for the manifest by ID), and a hex prefix of
// a known ID names it (ModelID, Match).
package catalog
