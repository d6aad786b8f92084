package node

import "runtime/debug"

// Version is the daemon's version; release builds set it with
// -ldflags "-X github.com/califusion/califusion/node.Version=v1.2.3".
var Version = ""

// VersionString returns Version, or the module version the binary was built from, or "dev".
func VersionString() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
