package ledger_test

import (
	"errors"
	"math/big"
	"testing"

	"github.com/califusion/califusion/config"
	"github.com/califusion/califusion/node/ledger"
	"github.com/califusion/califusion/node/ledger/ledgertest"
	"github.com/califusion/califusion/protocols/apierr"
	"github.com/califusion/califusion/protocols/icp"
)

func TestVerificationBudgetPerPeer(t *testing.T) {
	cfg := config.Default().ICP
	cfg.VerificationsPerPeer = 3
	l := ledger.New(cfg, nil)
	for i := 0; i < 3; i++ {
		if !l.AllowVerify("peer-a") {
			t.Fatalf("AllowVerify(peer-a) #%d = false, want true within the budget", i+1)
		}
	}
	if l.AllowVerify("peer-a") {
		t.Errorf("AllowVerify(peer-a) #4 = true, want false past the budget")
	}
	if !l.AllowVerify("peer-b") {
		t.Errorf("AllowVerify(peer-b) = false, want its own budget")
	}
}

func TestClientKindToken(t *testing.T) {
	cfg := config.Default().ICP
	cfg.LedgerKind = ""
	cfg.ReplicaURL = "://not a url"
	l := ledger.New(cfg, nil)
	if k := l.Kind(); k != string(icp.KindAuto) {
		t.Errorf("Kind() before connecting = %q, want %q", k, icp.KindAuto)
	}
	if _, ok := l.Token(); ok {
		t.Errorf("Token() before connecting = ok, want not known")
	}
	if _, err := l.Client(); apierr.CodeOf(err) != apierr.Unavailable {
		t.Errorf("Client() without a replica = %v, want code %d", err, apierr.Unavailable)
	}

	f := ledgertest.NewFake(100)
	l = ledger.NewWith(cfg, nil, f)
	if c, err := l.Client(); err != nil || c != f {
		t.Errorf("Client() = %v, %v; want the fake", c, err)
	}
	if k := l.Kind(); k != string(icp.KindICRC3) {
		t.Errorf("Kind() = %q, want the client's %q", k, icp.KindICRC3)
	}
	if tok, ok := l.Token(); !ok || tok.Symbol != "TST" {
		t.Errorf("Token() = %+v, %v; want the client's cached token", tok, ok)
	}
}

func TestErr(t *testing.T) {
	fail := &icp.TransferFailure{Kind: icp.ErrInsufficientFunds, Balance: big.NewInt(5)}
	short := &icp.Shortfall{Failure: fail, Balance: big.NewInt(5), Amount: big.NewInt(100), Fee: big.NewInt(10)}
	tests := []struct {
		name string
		err  error
		code int
	}{
		{"shortfall", short, apierr.InsufficientFunds},
		{"insufficient funds", fail, apierr.InsufficientFunds},
		{"temporarily unavailable", &icp.TransferFailure{Kind: icp.ErrTemporarilyUnavailable}, apierr.Unavailable},
		{"too old", &icp.TransferFailure{Kind: icp.ErrTooOld}, apierr.InvalidParams},
		{"call failed", errors.New("connection refused"), apierr.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := apierr.CodeOf(ledger.Err(tt.err)); got != tt.code {
				t.Errorf("Err(%v) code = %d, want %d", tt.err, got, tt.code)
			}
		})
	}
	var e *apierr.Error
	if errors.As(ledger.Err(short), &e); e.Data.(map[string]string)["needed"] != "110" {
		t.Errorf("Err(shortfall) data = %v, want needed 110", e.Data)
	}
}
