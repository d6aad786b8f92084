package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/califusion/califusion/protocols/adminrpc"
)

func TestPrintModelList(t *testing.T) {
	root, child := strings.Repeat("a", 64), strings.Repeat("b", 64)
	var out bytes.Buffer
	printModelList(&out, []adminrpc.ModelSummary{
		{ModelID: root, Name: "base", Size: 3 << 20, Lineage: root, Depth: 1, CreatedAt: "2026-01-02T03:04:05.000Z"},
		{ModelID: child, Name: "base", Size: 1500, Parent: root, Lineage: root, Depth: 2, CreatedAt: "2026-01-03T03:04:05.000Z"},
		{ModelID: strings.Repeat("c", 64), Name: "old", Size: 10}, // from a daemon without depths
	})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("printModelList printed %d lines, want a header and 3:\n%s", len(lines), out.String())
	}
	for i, want := range [][]string{
		{root, "base", "v1", "3.0 MiB", "2026-01-0"},
		{child, "└ base", "v2 after aaaaaaaa", "1.5 KiB"},
		{"old", "root", "10 B", "-"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %d = %q, want it to contain %q", i+1, lines[i+1], w)
			}
		}
	}
}
