package config

import (
	"strings"
	"testing"
	"time"
)

// TestICPVerificationBounds: the payment verification keys parse, zero means the default, and
// out-of-range values are refused naming the key.
func TestICPVerificationBounds(t *testing.T) {
	cfg, err := Parse([]byte("[icp]\nmax_payment_age = \"48h\"\nmax_payment_depth = 500\nmax_verify_blocks = 2000\nverifications_per_peer = 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ICP.MaxPaymentAge.Duration != 48*time.Hour || cfg.ICP.MaxPaymentDepth != 500 || cfg.ICP.MaxVerifyBlocks != 2000 || cfg.ICP.VerificationsPerPeer != 3 {
		t.Errorf("Parse = %+v, want the values set", cfg.ICP)
	}
	d := Default()
	if d.ICP.MaxPaymentAge.Duration != 720*time.Hour || d.ICP.MaxVerifyBlocks != 10_000 {
		t.Errorf("Default().ICP = %+v, want max_payment_age 720h and max_verify_blocks 10000", d.ICP)
	}
	d.ICP = ICP{ReplicaURL: "http://127.0.0.1:1", LedgerCanisterID: d.ICP.LedgerCanisterID}
	if err := d.Validate(); err != nil {
		t.Errorf("Validate with the verification keys zero (defaults) = %v", err)
	}
	for key, toml := range map[string]string{
		"icp.max_payment_age":        "max_payment_age = \"10m\"",
		"icp.max_verify_blocks":      "max_verify_blocks = 5",
		"icp.verifications_per_peer": "verifications_per_peer = -1",
	} {
		if _, err := Parse([]byte("[icp]\n" + toml + "\n")); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Parse(%s) = %v, want an error naming %s", toml, err, key)
		}
	}
}
