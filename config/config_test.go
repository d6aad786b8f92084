package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // substrings the error must contain
	}{
		{"unknown key", "[p2p]\nlisten_addrs = []\n", []string{`"p2p.listen_addrs"`, "line 2"}},
		{"unknown table", "[nope]\nx = 1\n", []string{`"nope`}},
		{"bad duration", "[node]\nshutdown_timeout = \"ten seconds\"\n", []string{"node.shutdown_timeout", "ten seconds"}},
		{"bad listen multiaddr", "[p2p]\nlisten = [\"/ip4/1.2.3/tcp/1\"]\n", []string{"p2p.listen[0]", "/ip4/1.2.3/tcp/1"}},
		{"bootstrap without peer ID", "[p2p]\nbootstrap = [\"/ip4/127.0.0.1/tcp/4001\"]\n", []string{"p2p.bootstrap[0]", "/p2p/"}},
		{"bad role", "[node]\nroles = [\"miner\"]\n", []string{"node.roles[0]", "miner"}},
		{"conn bounds", "[p2p]\nconn_low = 10\nconn_high = 5\n", []string{"p2p.conn_high"}},
		{"rpc addr", "[rpc]\naddr = \"localhost\"\n", []string{"rpc.addr"}},
		{"wrong type", "[p2p]\nconn_low = \"many\"\n", []string{"conn_low"}},
		{"log format", "[log]\nformat = \"xml\"\n", []string{"log.format", "xml"}},
		{"syntax", "[p2p\n", []string{"line 1"}},
		{"duplicate listen", "[p2p]\nlisten = [\"/ip4/127.0.0.1/udp/0/quic-v1\", \"/ip4/127.0.0.1/udp/0/quic-v1\"]\n", []string{"p2p.listen[1]", "twice"}},
		{"chunk size", "[transfer]\nchunk_size = 8388608\n", []string{"transfer.chunk_size"}},
		{"root key on mainnet", "[icp]\nfetch_root_key = true\n", []string{"icp.fetch_root_key", "mainnet"}},
		{"ledger id", "[icp]\nledger_canister_id = \"nope\"\n", []string{"icp.ledger_canister_id"}},
		{"ledger kind", "[icp]\nledger_kind = \"icrc9\"\n", []string{"icp.ledger_kind", "auto, icrc3 or icp"}},
		{"anchoring policy", "[calimero]\nanchoring = \"always\"\n", []string{"calimero.anchoring"}},
		{"require needs url", "[calimero]\nanchoring = \"require\"\n", []string{"calimero.url"}},
		{"url needs context", "[calimero]\nurl = \"http://127.0.0.1:2528\"\n", []string{"calimero.context_id"}},
		{"training contexts need url", "[calimero]\ntraining_contexts = true\n", []string{"calimero.training_contexts", "calimero.url"}},
		{"invite interval", "[calimero]\ninvite_interval = \"-1s\"\n", []string{"calimero.invite_interval"}},
		{"exec hook needs a command", "[train]\nhook = \"exec\"\n", []string{"train.command"}},
		{"unknown hook", "[train]\nhook = \"magic\"\n", []string{"train.hook", "magic"}},
		{"epochs", "[train]\nepochs = 0\n", []string{"train.epochs"}},
		{"learning rate", "[train]\nlearning_rate = -1.0\n", []string{"train.learning_rate"}},
		{"transport preference", "[p2p]\nprefer_transport = \"udp\"\n", []string{"p2p.prefer_transport", "udp"}},
		{"failover after", "[train]\nfailover_after = \"500ms\"\n", []string{"train.failover_after", "500ms"}},
		{"auto cap", "[train]\nauto_max_per_hour = -1\n", []string{"train.auto_max_per_hour"}},
		{"quiet hours", "[train]\nquiet_hours = \"22-6\"\n", []string{"train.quiet_hours", "HH:MM-HH:MM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.toml))
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want one mentioning %v", tt.toml, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.toml, err, w)
				}
			}
		})
	}
}

func TestParseOverDefaults(t *testing.T) {
	cfg, err := Parse([]byte("[node]\nroles = [\"trainer\"]\n[p2p]\ndiscovery_interval = \"2s\"\n"))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if got := cfg.Node.Roles; len(got) != 1 || got[0] != RoleTrainer {
		t.Errorf("roles = %v, want [trainer]", got)
	}
	if got := cfg.P2P.DiscoveryInterval.Duration; got != 2*time.Second {
		t.Errorf("discovery_interval = %v, want 2s", got)
	}
	if got, want := cfg.RPC.Addr, Default().RPC.Addr; got != want {
		t.Errorf("rpc.addr = %q, want default %q", got, want)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	want := Default()
	want.Node.Roles = []string{RoleCoordinator}
	want.P2P.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"}
	data, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "# Roles of this node") {
		t.Errorf("Encode() has no field comments:\n%s", data)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(Encode()) = %v\n%s", err, data)
	}
	again, _ := got.Encode()
	if string(again) != string(data) {
		t.Errorf("Encode(Parse(Encode(c))) differs:\n%s\nwant:\n%s", again, data)
	}
}

func TestApplyOverrides(t *testing.T) {
	cfg := Default()
	err := cfg.Apply(Overrides{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, RPCAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("Apply = %v", err)
	}
	if cfg.P2P.Listen[0] != "/ip4/127.0.0.1/tcp/0" || cfg.RPC.Addr != "127.0.0.1:0" {
		t.Errorf("Apply did not override: %+v %+v", cfg.P2P.Listen, cfg.RPC.Addr)
	}
	if err := cfg.Apply(Overrides{Bootstrap: []string{"/ip4/127.0.0.1/tcp/1"}}); err == nil {
		t.Errorf("Apply(bootstrap without /p2p/) = nil, want error")
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := Default().Encode()
	f.Add(seed)
	f.Add([]byte("[p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n"))
	f.Add([]byte("[node]\nshutdown_timeout = \"1x\"\n"))
	f.Add([]byte("a = 1\n[[x]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q) returned an empty error", data)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted a config that fails Validate: %v", data, err)
		}
		out, err := cfg.Encode()
		if err != nil {
			t.Fatalf("Encode after Parse(%q) = %v", data, err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("Parse(Encode(Parse(%q))) = %v\n%s", data, err, out)
		}
	})
}

func TestRemoteRPCNeedsConsent(t *testing.T) {
	for _, c := range []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"127.0.0.1:8645", false, true},
		{"[::1]:0", false, true},
		{"localhost:8645", false, true},
		{"0.0.0.0:8645", false, false},
		{"[::]:8645", false, false},
		{"192.168.1.10:8645", false, false},
		{"0.0.0.0:8645", true, true},
	} {
		cfg := Default()
		cfg.RPC.Addr, cfg.RPC.AllowRemote = c.addr, c.allow
		err := cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("Validate(rpc.addr %s, allow_remote %v) = %v, want ok %v", c.addr, c.allow, err, c.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "rpc.allow_remote") || !strings.Contains(err.Error(), "--unsafe-rpc")) {
			t.Errorf("Validate(rpc.addr %s) = %q, want it to name rpc.allow_remote and --unsafe-rpc", c.addr, err)
		}
	}
	cfg := Default()
	if err := cfg.Apply(Overrides{RPCAddr: "0.0.0.0:0"}); err == nil {
		t.Error("Apply(--rpc-addr 0.0.0.0:0) = nil, want a refusal")
	}
	if err := cfg.Apply(Overrides{RPCAddr: "0.0.0.0:0", UnsafeRPC: true}); err != nil || !cfg.RPC.AllowRemote {
		t.Errorf("Apply(--rpc-addr 0.0.0.0:0 --unsafe-rpc) = %v (allow_remote %v), want accepted", err, cfg.RPC.AllowRemote)
	}
	if _, err := Parse([]byte("[rpc]\naddr = \"0.0.0.0:1\"\nallow_remote = true\n")); err != nil {
		t.Errorf("Parse(allow_remote = true) = %v", err)
	}
}

func TestTrainingContextsDefault(t *testing.T) {
	cfg, err := Parse([]byte("[calimero]\nurl = \"http://127.0.0.1:2528\"\ncontext_id = \"c\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Calimero.TrainingOn() || cfg.Calimero.InviteInterval.Duration != 10*time.Second {
		t.Errorf("training contexts on = %v, invite interval %v; want on and 10s by default", cfg.Calimero.TrainingOn(), cfg.Calimero.InviteInterval)
	}
	cfg, err = Parse([]byte("[calimero]\nurl = \"http://127.0.0.1:2528\"\ncontext_id = \"c\"\ntraining_contexts = false\n"))
	if err != nil || cfg.Calimero.TrainingOn() {
		t.Errorf("training_contexts = false: on = %v, %v", cfg != nil && cfg.Calimero.TrainingOn(), err)
	}
	if (Calimero{}).TrainingOn() {
		t.Error("training contexts on without a url")
	}
}

func TestParseQuietHours(t *testing.T) {
	if from, to, err := ParseQuietHours("22:00-06:30"); err != nil || from != 22*60 || to != 6*60+30 {
		t.Errorf("ParseQuietHours = %d, %d, %v; want 1320, 390", from, to, err)
	}
	for _, bad := range []string{"22:00", "25:00-01:00", "10:00-10:00", "a-b"} {
		if _, _, err := ParseQuietHours(bad); err == nil {
			t.Errorf("ParseQuietHours(%q) accepted", bad)
		}
	}
}
