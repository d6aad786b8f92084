// Package catalog is the node's model catalog: verified signed manifests with their derived
// lineages, announced over gossipsub, read from peers' catalogs and from Calimero anchors, and
// provided in the DHT.
package catalog
