// Package config holds califusiond's configuration: the defaults, the strict TOML loader, and the
// validation that turns a bad setting into a message a user can act on.
//
// Values come from Default(), then the TOML file, then command-line flags, in that order.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Role names a job a node does in the network.
const (
	RolePublisher   = "publisher"
	RoleTrainer     = "trainer"
	RoleCoordinator = "coordinator"
)

// AllRoles lists every role in its canonical order.
var AllRoles = []string{RolePublisher, RoleTrainer, RoleCoordinator}

// Config is the whole configuration of one node.
type Config struct {
	Node     Node     `toml:"node" comment:"What this node does."`
	P2P      P2P      `toml:"p2p" comment:"Peer-to-peer networking (libp2p)."`
	RPC      RPC      `toml:"rpc" comment:"Admin JSON-RPC API (loopback only by default)."`
	Log      Log      `toml:"log" comment:"Structured logging."`
	Store    Store    `toml:"store" comment:"Local state (badger)."`
	Transfer Transfer `toml:"transfer" comment:"Model packaging and peer-to-peer transfer."`
	ICP      ICP      `toml:"icp" comment:"Internet Computer ledger used for payments."`
	Calimero Calimero `toml:"calimero" comment:"Calimero node (merod) where commitments are anchored."`
	Train    Train    `toml:"train" comment:"Federated training: the local training hook (trainers) and update limits (coordinators)."`
}

// Transfer configures packaging and the multi-source chunk fetcher.
type Transfer struct {
	ChunkSize    uint64   `toml:"chunk_size" comment:"Plaintext bytes per chunk for models this node publishes (at most 4 MiB). Default: 1048576."`
	Window       int      `toml:"window" comment:"Chunks requested from one peer in one request. Default: 8."`
	PerPeer      int      `toml:"per_peer" comment:"Requests kept in flight to one peer. Default: 2."`
	MaxProviders int      `toml:"max_providers" comment:"Peers fetched from at once. Default: 8."`
	StallTimeout Duration `toml:"stall_timeout" comment:"A peer that sends nothing for this long is dropped and its work reassigned. Default: 15s."`
}

// ICP configures the ledger client.
type ICP struct {
	ReplicaURL       string `toml:"replica_url" comment:"Replica or boundary-node URL. Default: https://icp-api.io (mainnet)."`
	LedgerCanisterID string `toml:"ledger_canister_id" comment:"ICRC-1/ICRC-3 ledger canister. Default: the ICP ledger, ryjl3-tyaaa-aaaaa-aaaba-cai."`
	FetchRootKey     bool   `toml:"fetch_root_key" comment:"Trust the root key the replica reports. Only for local replicas (dfx, PocketIC, the devnet); refused for mainnet URLs. Default: false."`
	IdentityPEM      string `toml:"identity_pem" comment:"Path of a dfx PEM identity to pay from (secp256k1, Ed25519 or prime256v1, as dfx writes them). Empty: the node's own identity key. Default: empty."`
	LedgerKind       string `toml:"ledger_kind" comment:"How payments are verified: auto (ICRC-3 when the ledger lists it, else the ICP ledger's own blocks), icrc3 or icp. Default: auto."`

	MaxPaymentAge        Duration `toml:"max_payment_age" comment:"Coordinators refuse a payment block older than this (by its ledger timestamp), at least 1h. 0: the default. Default: 720h."`
	MaxPaymentDepth      uint64   `toml:"max_payment_depth" comment:"Coordinators refuse a payment block more than this many blocks behind the ledger tip. 0: the default. Default: 1000000."`
	MaxVerifyBlocks      uint64   `toml:"max_verify_blocks" comment:"Most ledger blocks one payment verification fetches to chain the block to the certified tip; a longer walk is refused with a retry hint and resumes where it stopped. 100 to 1000000; 0: the default. Default: 10000."`
	VerificationsPerPeer int      `toml:"verifications_per_peer" comment:"Payment verifications one peer may ask a coordinator for per minute (the burst is the same number). 0: the default. Default: 10."`
}

// Calimero configures anchoring.
type Calimero struct {
	Anchoring       string `toml:"anchoring" comment:"require: models without a valid anchor are not fetched or paid for; prefer: anchor when reachable; off. Default: prefer."`
	URL             string `toml:"url" comment:"merod HTTP base URL, e.g. http://127.0.0.1:2528. Empty: anchoring is off. Default: empty."`
	ContextID       string `toml:"context_id" comment:"Context running the kv-store application. Default: empty."`
	ExecutorKey     string `toml:"executor_public_key" comment:"This node's identity in the context (executorPublicKey). Default: empty."`
	CredentialsFile string `toml:"credentials_file" comment:"File with \"username:password\" for merod's embedded auth. Empty: no auth. Default: empty."`
	// TrainingContexts: nil means true, so a Calimero section written without the key keeps it on.
	TrainingContexts *bool    `toml:"training_contexts,omitempty" comment:"Anchor round commitments in a training context per lineage (created by its coordinators in a namespace on their merod; paying trainers are invited into it), not in context_id, which stays the catalog context of manifests. Needs url. Default: true."`
	InviteInterval   Duration `toml:"invite_interval" comment:"Coordinators: the shortest time between two invitations into a training context for one peer (a burst of 3 is allowed); 0 means the default. Default: 10s."`
}

// TrainingOn reports whether training contexts are on: url is set and training_contexts is not
// false.
func (c Calimero) TrainingOn() bool {
	return c.URL != "" && (c.TrainingContexts == nil || *c.TrainingContexts)
}

// Node configures the node's identity-independent behaviour.
type Node struct {
	Roles           []string `toml:"roles" comment:"Roles of this node: any of publisher, trainer, coordinator. Default: all three."`
	ShutdownTimeout Duration `toml:"shutdown_timeout" comment:"How long a clean shutdown may take before the daemon gives up waiting. Default: 10s."`
}

// P2P configures the libp2p host, the DHT and gossipsub.
type P2P struct {
	Listen            []string `toml:"listen" comment:"Multiaddrs to listen on (TCP and QUIC). Port 0 picks a free port."`
	Bootstrap         []string `toml:"bootstrap" comment:"Peers to join the network through, as full multiaddrs ending in /p2p/<peer ID>. Default: none."`
	Security          []string `toml:"security" comment:"Transport security protocols in order of preference: noise, tls (between daemons here Noise moved model chunks about 1.25× faster than TLS, BENCHMARKS.md). Default: [\"noise\", \"tls\"]."`
	PreferTransport   string   `toml:"prefer_transport" comment:"Transport dialled first when a peer listens on both: tcp or quic (the other follows 250 ms later if the first has not connected). Default: tcp."`
	ConnLow           int      `toml:"conn_low" comment:"Connection manager low water mark (connections kept after trimming). Default: 32."`
	ConnHigh          int      `toml:"conn_high" comment:"Connection manager high water mark (trimming starts above it). Default: 96."`
	ConnGrace         Duration `toml:"conn_grace" comment:"New connections are not trimmed for this long. Default: 20s."`
	MaxMemoryMiB      int64    `toml:"max_memory_mib" comment:"Resource manager: memory all libp2p streams and connections may reserve, in MiB. Default: 256."`
	MaxFDs            int      `toml:"max_fds" comment:"Resource manager: file descriptors libp2p may use. Default: 512."`
	DiscoveryInterval Duration `toml:"discovery_interval" comment:"How often the node looks for more peers in the DHT while below conn_low. Default: 30s."`
	PresenceInterval  Duration `toml:"presence_interval" comment:"How often the node announces its roles on gossipsub. Default: 1m."`
}

// RPC configures the admin API listener.
type RPC struct {
	Addr         string   `toml:"addr" comment:"host:port of the admin JSON-RPC listener. Keep it on loopback. Port 0 picks a free port. Default: 127.0.0.1:8645."`
	ReadTimeout  Duration `toml:"read_timeout" comment:"Longest time to read one request. Default: 30s."`
	WriteTimeout Duration `toml:"write_timeout" comment:"Longest time to answer one request. Default: 10m."`
	AllowRemote  bool     `toml:"allow_remote" comment:"Let addr be a non-loopback address, so the admin API (full control of the node and its funds, behind the bearer token only) is reachable from the network. Unsafe. Default: false."`
	MetricsAddr  string   `toml:"metrics_addr" comment:"host:port of a separate Prometheus listener serving only /metrics and /healthz, without a token (nothing on it can change the node), so Prometheus need not hold the admin token. Loopback only unless allow_remote is set. Port 0 picks a free port (written to <datadir>/metrics.addr). Empty: off; /metrics stays on the admin listener, behind rpc.token or the read-only metrics.token. Default: empty."`
}

// Loopback reports whether Addr's host is a loopback address (or localhost).
func (r RPC) Loopback() bool { return loopback(r.Addr) }

// MetricsLoopback reports whether MetricsAddr's host is a loopback address (or localhost).
func (r RPC) MetricsLoopback() bool { return loopback(r.MetricsAddr) }

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Log configures the daemon's logs.
type Log struct {
	Level  string `toml:"level" comment:"Minimum level: debug, info, warn, error. Default: info."`
	Format string `toml:"format" comment:"text or json. Default: text."`
}

// Store configures the badger database.
type Store struct {
	GCInterval     Duration `toml:"gc_interval" comment:"How often badger's value log is garbage-collected. Default: 10m."`
	GCDiscardRatio float64  `toml:"gc_discard_ratio" comment:"Rewrite a value-log file when at least this share of it is stale (0..1, exclusive). Default: 0.5."`
	MaxBlobBytes   uint64   `toml:"max_blob_bytes" comment:"Storage cap: bytes of model ciphertext (the blobs folder) this node aims to keep at most. Past it, versions superseded in their lineage are removed, oldest first; published, pinned and latest versions never are (a warning says what would need to go). 0: no cap. Default: 0."`
	BlobCheckEvery Duration `toml:"blob_check_interval" comment:"How often the storage cap is checked (also after every completed fetch). Default: 1m."`
}

// Training hooks.
const (
	HookBuiltin = "builtin"
	HookExec    = "exec"
)

// Train configures training rounds.
type Train struct {
	Data          string   `toml:"data" comment:"Training data: a CSV (features, then an integer label; .gz allowed) for the built-in trainer, or any path an exec hook receives as {data}. train_run may override it. Default: empty."`
	Hook          string   `toml:"hook" comment:"builtin (Go logistic regression or MLP, chosen by the model's tensors) or exec (runs command). Default: builtin."`
	Command       []string `toml:"command" comment:"Exec hook: program and arguments; {model}, {data}, {out} and {config} are replaced by the decrypted model, the data path, where the update must be written (safetensors with metadata \"samples\") and a JSON file with the round's configuration. A relative program containing a slash, and any argument starting with ./ or ../, is resolved against this file's folder; a bare program name is looked up in PATH. Default: empty."`
	Timeout       Duration `toml:"timeout" comment:"A hook running longer is killed with its process group. Default: 10m."`
	Epochs        int      `toml:"epochs" comment:"Built-in trainer: local epochs per round. Default: 5."`
	BatchSize     int      `toml:"batch_size" comment:"Built-in trainer: SGD mini-batch size. Default: 32."`
	LearningRate  float64  `toml:"learning_rate" comment:"Built-in trainer: SGD learning rate (SGD runs on features standardised by the trainer's own data). Default: 0.1."`
	FeatureScale  float64  `toml:"feature_scale" comment:"Built-in trainer and evaluator: every feature is divided by this. Default: 1."`
	EvalData      string   `toml:"eval_data" comment:"Coordinator: held-out CSV on which each aggregate is scored (accuracy in the round report); an aggregate that scores worse than its base version by more than eval_tolerance is not published and its round fails. Default: empty (no evaluation, no floor)."`
	EvalTolerance float64  `toml:"eval_tolerance" comment:"Coordinator: how far (a fraction of accuracy, 0 to 1) an aggregate's accuracy on eval_data may fall below its base version's and still be published. Default: 0.02."`
	MaxUpdateMiB  int      `toml:"max_update_mib" comment:"Coordinator: largest update accepted, in MiB. Default: 1024."`
	FailoverAfter Duration `toml:"failover_after" comment:"Coordinator: a round of a lineage this node coordinates whose own coordinator has been silent (no announcement, no connection) this long is re-opened here, from its anchored round commitment, by the first live coordinator of the lineage. 0s: never. Default: 1m."`
	// HookConfig is copied into the "config" map of the exec hook's {config} file.
	HookConfig  map[string]any `toml:"hook_config,omitempty" comment:"Exec hook: extra settings copied into the \"config\" map of the {config} JSON file (at most 32 keys of up to 64 characters; strings, numbers, booleans), e.g. { holdout = 0.1 } for e2e/model/Model.py. Keys the round's own config carries take precedence. Default: empty."`
	Auto        bool           `toml:"auto" comment:"Trainer: join by itself every announced round it can join (open, deadline ahead, coordinator authorised) on a lineage it paid for: fetch, unlock, train, submit. Default: false."`
	AutoPerHour int            `toml:"auto_max_per_hour" comment:"Trainer with auto: the most rounds joined in any hour (0: no cap). Default: 60."`
	QuietHours  string         `toml:"quiet_hours" comment:"Trainer with auto: a daily window, HH:MM-HH:MM in UTC, in which no round is joined. Default: empty (none)."`
	// AdoptMaxReward is in tokens, as ledger_balance shows them.
	AdoptMaxReward string `toml:"adopt_max_reward" comment:"Coordinator: the most it pays, in tokens (e.g. \"0.001\"), to each accepted contributor of a round of a campaign it took over from a silent coordinator (that coordinator chose the campaign's reward, not this node's operator). Default: 0 (it pays none)."`
	// MaxRoundEpochs caps the local epochs a round's coordinator may ask of this trainer.
	MaxRoundEpochs int `toml:"max_round_epochs" comment:"Trainer: the most local epochs (a count) a round may ask for; train_run refuses a round asking for more and train.auto does not join it (train_run's own epochs flag is not capped). 0: no cap. Default: 50."`
}

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		Node: Node{
			Roles:           append([]string(nil), AllRoles...),
			ShutdownTimeout: Duration{10 * time.Second},
		},
		P2P: P2P{
			Listen:            []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
			Bootstrap:         []string{},
			Security:          []string{"noise", "tls"},
			PreferTransport:   "tcp",
			ConnLow:           32,
			ConnHigh:          96,
			ConnGrace:         Duration{20 * time.Second},
			MaxMemoryMiB:      256,
			MaxFDs:            512,
			DiscoveryInterval: Duration{30 * time.Second},
			PresenceInterval:  Duration{time.Minute},
		},
		RPC: RPC{
			Addr:         "127.0.0.1:8645",
			ReadTimeout:  Duration{30 * time.Second},
			WriteTimeout: Duration{10 * time.Minute},
		},
		Log:   Log{Level: "info", Format: "text"},
		Store: Store{GCInterval: Duration{10 * time.Minute}, GCDiscardRatio: 0.5, BlobCheckEvery: Duration{time.Minute}},
		Transfer: Transfer{
			ChunkSize:    1 << 20,
			Window:       8,
			PerPeer:      2,
			MaxProviders: 8,
			StallTimeout: Duration{15 * time.Second},
		},
		ICP: ICP{
			ReplicaURL:           "https://icp-api.io",
			LedgerCanisterID:     "ryjl3-tyaaa-aaaaa-aaaba-cai",
			MaxPaymentAge:        Duration{720 * time.Hour},
			MaxPaymentDepth:      1_000_000,
			MaxVerifyBlocks:      10_000,
			VerificationsPerPeer: 10,
			LedgerKind:           "auto",
		},
		Calimero: Calimero{Anchoring: "prefer", InviteInterval: Duration{10 * time.Second}},
		Train: Train{
			Hook: HookBuiltin, Timeout: Duration{10 * time.Minute}, Epochs: 5, BatchSize: 32, LearningRate: 0.1,
			FeatureScale: 1, MaxUpdateMiB: 1024, EvalTolerance: 0.02, FailoverAfter: Duration{time.Minute}, AutoPerHour: 60,
			MaxRoundEpochs: 50,
		},
	}
}

// Load reads the TOML file at path over the defaults and validates the result.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.Train.Command = ResolveCommand(cfg.Train.Command, dir)
	return cfg, nil
}

// Parse decodes TOML over the defaults, strictly (an unknown key is an error naming it), and
// validates the result.
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, describeDecodeError(err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// describeDecodeError turns go-toml's errors into one sentence naming the key and line.
func describeDecodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			row, _ := e.Position()
			keys = append(keys, fmt.Sprintf("%q (line %d)", strings.Join(e.Key(), "."), row))
		}
		return fmt.Errorf("unknown key %s: remove it or check its spelling against `califusiond config show`", strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		if key := de.Key(); len(key) > 0 {
			return fmt.Errorf("%s (line %d, column %d): %s", strings.Join(key, "."), row, col, unwrapMessage(de))
		}
		return fmt.Errorf("line %d, column %d: %s", row, col, unwrapMessage(de))
	}
	return err
}

func unwrapMessage(de *toml.DecodeError) string {
	msg := de.Error()
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// Encode renders cfg as commented TOML, the form `init` writes and `config show` prints.
func (c *Config) Encode() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# califusiond configuration. Every key is optional; a missing key takes the default shown.\n\n")
	enc := toml.NewEncoder(&buf).SetIndentTables(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// HasRole reports whether the node has role r.
func (c *Config) HasRole(r string) bool {
	for _, have := range c.Node.Roles {
		if have == r {
			return true
		}
	}
	return false
}
