package node

import (
	"runtime"
	"runtime/debug"

	"github.com/califusion/califusion/protocols/announce"
	"github.com/califusion/califusion/protocols/catalog"
	"github.com/califusion/califusion/protocols/chunks"
	"github.com/califusion/califusion/protocols/kex"
	"github.com/califusion/califusion/protocols/keys"
	"github.com/califusion/califusion/protocols/updates"
)

// Build describes the binary: what `califusiond version` prints.
type Build struct {
	Version   string    `json:"version"`
	Commit    string    `json:"commit,omitempty"`   // vcs.revision
	Modified  bool      `json:"modified,omitempty"` // vcs.modified: built from a tree with local changes
	GoVersion string    `json:"go_version"`
	Protocols Protocols `json:"protocols"`
}

// Protocols are the wire protocol identifiers this binary speaks: two nodes interoperate when
// they share them.
type Protocols struct {
	Streams     []string `json:"streams"`      // libp2p stream protocol IDs
	KexPurposes []string `json:"kex_purposes"` // session purposes on the kex protocol (keys, updates)
	Topics      []string `json:"topics"`       // gossipsub topic names
	DHTPrefix   string   `json:"dht_prefix"`   // the Kademlia DHT's protocol prefix
}

// SpokenProtocols returns the protocol IDs, kex purposes, topics and DHT prefix of this build.
func SpokenProtocols() Protocols {
	return Protocols{
		Streams: []string{catalog.ID, chunks.ID, kex.ID, DHTPrefix + "/kad/1.0.0"},
		KexPurposes: []string{keys.PurposeEscrow, keys.PurposeUnlock, keys.PurposeProbe,
			updates.PurposeSubmit, updates.PurposeRound},
		Topics:    []string{announce.ModelsTopic, announce.RoundsTopic, announce.PresenceTopic},
		DHTPrefix: DHTPrefix,
	}
}

// BuildInfo returns the version, the commit and Go version from the binary's build info, and
// the protocols it speaks.
func BuildInfo() Build {
	b := Build{Version: VersionString(), GoVersion: runtime.Version(), Protocols: SpokenProtocols()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	return b
}
