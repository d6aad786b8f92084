package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/califusion/califusion/protocols/adminrpc"
	"github.com/dustin/go-humanize"
)

// printModelList prints model_list as a table: the versions of one lineage together (the node
// lists them root first, then by depth), each version's depth and parent, when it was created
// and its size in human units.
func printModelList(w io.Writer, models []adminrpc.ModelSummary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tNAME\tVERSION\tCREATED\tSIZE\tPRICE\tLOCAL\tANCHORED\tUNLOCKED")
	for i, m := range models {
		name := m.Name
		if m.Depth > 1 && i > 0 && models[i-1].Lineage == m.Lineage {
			name = "└ " + name // a later version of the lineage listed above
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%v\t%v\n", m.ModelID, name, versionText(m), createdText(m.CreatedAt),
			humanize.IBytes(m.Size), m.Price, m.LocalChunks, m.Chunks, m.Anchored, m.Unlocked)
	}
	tw.Flush()
}

// versionText is "v1" for a root, "v3 after 1a2b3c4d" for the third version of a lineage
// (after its parent's ID prefix).
func versionText(m adminrpc.ModelSummary) string {
	switch {
	case m.Depth == 0: // a daemon from before depths were listed
		if m.Parent == "" {
			return "root"
		}
		return "after " + prefix8(m.Parent)
	case m.Parent == "":
		return fmt.Sprintf("v%d", m.Depth)
	}
	return fmt.Sprintf("v%d after %s", m.Depth, prefix8(m.Parent))
}

// prefix8 is an ID's first 8 hex digits: the shortest prefix every verb takes.
func prefix8(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// createdText shows an RFC 3339 time as local minutes; what does not parse is shown as it is.
func createdText(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if s == "" {
			return "-"
		}
		return s
	}
	return t.Local().Format("2006-01-02 15:04")
}
