package e2e

import (
	"testing"

	"github.com/califusion/califusion/protocols/icp/icptest"
)

// startICPLedger runs the replica emulator in ICP-ledger mode (the default configuration's
// ledger: protobuf blocks, no ICRC-3) for the test.
func startICPLedger(t *testing.T, opts icptest.Options) *icptest.Sim {
	t.Helper()
	opts.ICPLedger = true
	replica, err := icptest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Close() })
	return replica
}
