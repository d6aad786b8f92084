package icp

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// LedgerKind is how a ledger's blocks are read and verified.
type LedgerKind string

// Ledger kinds; KindAuto asks the ledger which standards it supports.
const (
	KindAuto  LedgerKind = "auto"
	KindICRC3 LedgerKind = "icrc3" // ICRC-3 blocks and tip certificate (ckBTC, ckETH, SNS ledgers)
	KindICP   LedgerKind = "icp"   // the ICP ledger's own protobuf blocks (ryjl3-tyaaa-aaaaa-aaaba-cai)
)

// ParseLedgerKind reads a configured kind; "" means auto.
func ParseLedgerKind(s string) (LedgerKind, error) {
	switch k := LedgerKind(strings.ToLower(strings.TrimSpace(s))); k {
	case "", KindAuto:
		return KindAuto, nil
	case KindICRC3, KindICP:
		return k, nil
	}
	return "", fmt.Errorf("icp: ledger kind %q is not one of auto, icrc3, icp", s)
}

// StandardRecord is one entry of icrc1_supported_standards / icrc10_supported_standards.
type StandardRecord struct {
	Name string `ic:"name"`
	URL  string `ic:"url"`
}

// ErrUnknownLedger is returned when a ledger offers neither ICRC-3 nor the ICP ledger's blocks.
var ErrUnknownLedger = errors.New("the ledger supports neither ICRC-3 nor the ICP ledger's query_encoded_blocks, so payments on it cannot be verified")

// Standards returns the standards the ledger lists (icrc1_supported_standards, else
// icrc10_supported_standards).
func (c *Client) Standards(ctx context.Context) ([]StandardRecord, error) {
	var out []StandardRecord
	err := c.query(ctx, "icrc1_supported_standards", []any{}, []any{&out})
	if err != nil {
		if err2 := c.query(ctx, "icrc10_supported_standards", []any{}, []any{&out}); err2 != nil {
			return nil, err
		}
	}
	return out, nil
}

// KnownKind returns the configured kind, or the detected one once Kind has run (KindAuto before),
// without asking the ledger.
func (c *Client) KnownKind() LedgerKind {
	c.kindMu.Lock()
	defer c.kindMu.Unlock()
	if c.kind == "" {
		return KindAuto
	}
	return c.kind
}

// Kind returns the ledger's kind: the configured one, or (auto) ICRC-3 when the ledger lists
// ICRC-3 among its standards, else the ICP ledger's path when it answers query_encoded_blocks.
// The answer is remembered once known.
func (c *Client) Kind(ctx context.Context) (LedgerKind, error) {
	c.kindMu.Lock()
	k := c.kind
	c.kindMu.Unlock()
	if k != KindAuto && k != "" {
		return k, nil
	}
	stds, err := c.Standards(ctx)
	if err != nil {
		return "", err
	}
	for _, s := range stds {
		if strings.EqualFold(s.Name, "ICRC-3") {
			k = KindICRC3
		}
	}
	if k != KindICRC3 {
		if _, err := c.queryEncoded(ctx, 0, 0); err != nil {
			return "", fmt.Errorf("%w (%v)", ErrUnknownLedger, err)
		}
		k = KindICP
	}
	c.kindMu.Lock()
	c.kind = k
	c.kindMu.Unlock()
	return k, nil
}
