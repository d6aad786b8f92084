package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// schemaSamples is one key from every key helper of the package. TestSchema fails when a helper
// is missing here, so a new helper is checked against the Schema table too.
var schemaSamples = map[string]Key{
	"MetaKey":        MetaKey("schema"),
	"PeerKey":        PeerKey("12D3KooWA"),
	"PeerPrefix":     PeerPrefix(),
	"PresenceKey":    PresenceKey("12D3KooWA"),
	"PresencePrefix": PresencePrefix(),
	"JobKey":         JobKey("00112233"),
	"JobPrefix":      JobPrefix(),
	"ModelKey":       ModelKey([32]byte{1}),
	"ModelPrefix":    ModelPrefix(),
	"LeavesKey":      LeavesKey([32]byte{1}),
	"HaveKey":        HaveKey([32]byte{1}),
	"KeyKey":         KeyKey([32]byte{1}),
	"PaymentKey":     PaymentKey("ryjl3-tyaaa-aaaaa-aaaba-cai", 7),
	"GrantKey":       GrantKey([32]byte{2}, "12D3KooWA"),
	"PaidKey":        PaidKey("ryjl3-tyaaa-aaaaa-aaaba-cai", [32]byte{2}, "aaaaa-aa"),
	"PaidPrefix":     PaidPrefix(),
	"RoundKey":       RoundKey("00112233445566778899aabbccddeeff"),
	"RoundPrefix":    RoundPrefix(),
	"UpdateKey":      UpdateKey("00112233445566778899aabbccddeeff", "12D3KooWA"),
	"UpdatePrefix":   UpdatePrefix("00112233445566778899aabbccddeeff"),
	"ReportKey":      ReportKey("00112233445566778899aabbccddeeff"),
	"TrainedKey":     TrainedKey("aabb"),
	"TrainedPrefix":  TrainedPrefix(),
	"PenaltyKey":     PenaltyKey("12D3KooWA"),
	"PenaltyPrefix":  PenaltyPrefix(),
	"PinKey":         PinKey([32]byte{1}),
	"ShareKey":       ShareKey([32]byte{1}),
	"SharePrefix":    SharePrefix(),
	"KeyPrefix":      KeyPrefix(),
	"CoordSetKey":    CoordSetKey([32]byte{1}),
	"CoordSetPrefix": CoordSetPrefix(),
	"PinPrefix":      PinPrefix(),
	"SecureKey":      SecureKey(strings.Repeat("ab", 16)),
	"SecurePrefix":   SecurePrefix(),
	"CampaignKey":    CampaignKey(strings.Repeat("cd", 16)),
	"CampaignPrefix": CampaignPrefix(),
	"PayoutKey":      PayoutKey(strings.Repeat("cd", 16), "12D3KooW"),
}

// packageDecls returns the names of the package's exported functions that return a Key and of
// its ns* constants, read from its source.
func packageDecls(t *testing.T) (helpers, consts map[string]string) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	helpers, consts = map[string]string{}, map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				res := d.Type.Results
				if d.Recv == nil && d.Name.IsExported() && res != nil && len(res.List) == 1 {
					if id, ok := res.List[0].Type.(*ast.Ident); ok && id.Name == "Key" {
						helpers[d.Name.Name] = name
					}
				}
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, s := range d.Specs {
					for _, id := range s.(*ast.ValueSpec).Names {
						if strings.HasPrefix(id.Name, "ns") {
							consts[id.Name] = name
						}
					}
				}
			}
		}
	}
	return helpers, consts
}

func TestSchema(t *testing.T) {
	seen := map[string]bool{}
	for i, a := range Schema {
		if !strings.HasSuffix(a.Prefix, "/") || strings.Count(a.Prefix, "/") != 1 || a.Key == "" || a.Value == "" || a.Owner == "" {
			t.Errorf("Schema[%d] = %+v, want a one-segment prefix ending in / and a key layout, value type and owner", i, a)
		}
		if seen[a.Prefix] {
			t.Errorf("Schema lists prefix %q twice", a.Prefix)
		}
		seen[a.Prefix] = true
		for _, b := range Schema[i+1:] {
			if strings.HasPrefix(a.Prefix, b.Prefix) || strings.HasPrefix(b.Prefix, a.Prefix) {
				t.Errorf("namespaces %q and %q overlap", a.Prefix, b.Prefix)
			}
		}
	}

	helpers, consts := packageDecls(t)
	for name, file := range helpers {
		if _, ok := schemaSamples[name]; !ok {
			t.Errorf("key helper %s (%s) has no sample in schemaSamples", name, file)
		}
	}
	for name := range schemaSamples {
		if _, ok := helpers[name]; !ok {
			t.Errorf("schemaSamples names %s, which is not a key helper of the package", name)
		}
	}
	for name, file := range consts {
		if file != "schema.go" {
			t.Errorf("namespace constant %s is declared in %s, want schema.go", name, file)
		}
	}
	if len(consts) != len(Schema) {
		t.Errorf("%d namespace constants, %d Schema entries: every namespace is in the table once", len(consts), len(Schema))
	}

	// Every helper's key lies in exactly one namespace, and every namespace has a helper.
	used := map[string][]string{}
	for name, k := range schemaSamples {
		var in []string
		for _, ns := range Schema {
			if strings.HasPrefix(string(k), ns.Prefix) {
				in = append(in, ns.Prefix)
			}
		}
		if len(in) != 1 {
			t.Errorf("%s() = %q is in namespaces %v, want exactly one", name, k, in)
			continue
		}
		used[in[0]] = append(used[in[0]], name)
	}
	for _, ns := range Schema {
		if len(used[ns.Prefix]) == 0 {
			t.Errorf("namespace %q has no key helper", ns.Prefix)
		}
	}
	if t.Failed() {
		var names []string
		for p, hs := range used {
			sort.Strings(hs)
			names = append(names, p+" "+strings.Join(hs, ","))
		}
		sort.Strings(names)
		t.Logf("helpers by namespace:\n%s", strings.Join(names, "\n"))
	}
}
